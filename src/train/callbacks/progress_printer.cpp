#include <algorithm>

#include "core/spelling.h"
#include "nn/summary.h"
#include "train/callbacks.h"

namespace gpuml {

namespace {

// "5 epochs"; a resumed run whose --epochs changed its length says so.
std::string epochs_text(const TrainState& st) {
  const int64_t epochs = st.config->epochs;
  if (st.config->steps > 0) return fmt::format("{} ({})", count_of(st.config->steps, "step"), count_of(epochs, "epoch"));
  if (!st.resumed || st.saved_epochs == epochs) return count_of(epochs, "epoch");
  return fmt::format("{} ({} from {} by --epochs)", count_of(epochs, "epoch"),
                     epochs > st.saved_epochs ? "extended" : "shortened", st.saved_epochs);
}

// "resuming runs/x/last.safetensors at epoch 2, step 45 (batch 14 of 32)"
std::string resume_line(const TrainState& st) {
  const TrainingProgress& p = st.progress;
  const bool mid_epoch = p.loader_epoch == p.epoch && p.loader_batch > 0;
  return fmt::format("resuming {} at epoch {}, step {}{}", st.resumed_from, p.epoch + 1, p.step,
                     mid_epoch ? fmt::format(" (batch {} of {})", p.loader_batch + 1, st.steps_per_epoch) : "");
}

}  // namespace

void ProgressPrinter::on_train_begin(TrainState& st) {
  if (!st.primary || !log_) return;
  const TrainConfig& cfg = *st.config;
  fmt::print(log_, "data: {}\n", st.data_description);
  fmt::print(log_, "{}\n", st.task_note);
  if (!st.split_note.empty()) fmt::print(log_, "{}\n", st.split_note);
  fmt::print(log_, "{}", nn::model_summary(*st.model, cfg.batch_size, trainer_.planned_peak_bytes()));
  fmt::print(log_, "optimizer: {}, {}, batch {}, device {}, precision {}{}, run directory {}\n",
             optim::describe(cfg.optimizer), epochs_text(st), cfg.batch_size, st.device_used,
             precision_name(cfg.precision), cfg.deterministic ? " (deterministic)" : "", st.run_dir.string());
  if (!st.precision_note.empty()) fmt::print(log_, "note: {}\n", st.precision_note);
  if (!st.weights_from.empty()) fmt::print(log_, "starting weights: {}\n", st.weights_from);
  if (st.resumed) fmt::print(log_, "{}\n", resume_line(st));
  std::fflush(log_);  // the summary comes before the progress bar (on stderr)
}

void ProgressPrinter::on_epoch_begin(TrainState& st) {
  if (!st.primary || !out_) return;
  // --steps: the last epoch is cut short where the run ends.
  const int64_t steps = st.config->steps > 0
                            ? std::min(st.steps_per_epoch, st.config->steps - st.epoch * st.steps_per_epoch)
                            : st.steps_per_epoch;
  bar_.emplace(fmt::format("epoch {}/{}", st.epoch + 1, st.config->epochs), steps, "samples", out_);
  bar_->resume_at(st.first_batch);
}

void ProgressPrinter::on_step_end(TrainState& st) {
  if (bar_)
    bar_->advance(1, st.batch_rows, fmt::format("loss {:.4f} {} {:.4f}", st.task.mean_loss(st.sums),
                                                st.task.metric_short(), st.task.metric(st.sums)));
}

void ProgressPrinter::on_step_evaluated(TrainState& st) {
  if (!st.primary || !log_) return;
  const TrainState::StepEvaluation& e = st.step_evaluation;
  fmt::print(log_, "step {}: {} loss {:.4f} {} {:.4f} ({} rows)\n", e.step, st.eval_name, e.loss,
             st.task.metric_short(), e.metric, e.rows);
  std::fflush(log_);
}

void ProgressPrinter::on_epoch_stopped(TrainState&) {
  if (bar_) bar_->finish("stopped");
  bar_.reset();
}

void ProgressPrinter::on_epoch_end(TrainState& st) {
  const EpochSummary& e = st.epoch_summary;
  const char* metric = st.task.metric_short();
  const std::string held_out = st.eval_name.empty() ? ""
                               : fmt::format(" | {} loss {:.4f} {} {:.4f}", st.eval_name, e.eval_loss, metric,
                                             e.eval_metric);
  if (bar_)
    bar_->finish(fmt::format("loss {:.4f} {} {:.4f}{} | lr {:.1e} | data wait {:.1f}%", e.train_loss, metric,
                             e.train_metric, held_out, e.lr, 100.0 * e.data_wait));
  bar_.reset();
}

void ProgressPrinter::on_train_end(TrainState& st) {
  if (!st.primary || !log_ || !st.stop_early) return;
  fmt::print(log_, "early stop: no better {} {} for {} epochs (best {:.4f} at epoch {})\n", st.eval_name,
             st.task.metric_name(), st.config->patience, st.progress.best_metric, st.progress.best_epoch);
}

}  // namespace gpuml
