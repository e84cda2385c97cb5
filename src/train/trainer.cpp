#include "train/trainer.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/spelling.h"
#include "data/batch_allocator.h"
#include "data/shard_format.h"
#include "graph/planner.h"
#include "io/metrics_csv.h"
#include "io/svg_plot.h"
#include "interop/onnx_import.h"
#include "interop/weights_file.h"
#include "io/tensorboard.h"
#include "nn/model.h"
#include "nn/summary.h"
#include "train/checkpoint.h"
#include "train/dataset_source.h"
#include "train/model_runner.h"
#include "train/progress.h"
#include "train/resume.h"
#include "train/run_dir.h"
#include "train/shard_source.h"

namespace gpuml {

namespace fs = std::filesystem;
using json = nlohmann::json;

PlanOptions plan_options_for_device(const std::string& device) {
  BackendRegistry& registry = backend_registry();
  PlanOptions p;
  if (device == "cpu") {  // never loads the CUDA plugin (no context, handles or pinned memory on the GPUs)
    p.backends = {&registry.get("cpu"), &registry.reference()};
    return p;
  }
  if (device == "ref") {
    p.backends = {&registry.reference()};
    return p;
  }
  Backend* gpu = nullptr;  // the first device backend (the CUDA plugin's), if it loaded
  for (Backend* b : registry.all())
    if (!gpu && !b->device().is_host()) gpu = b;
  if (device == "auto" && gpu) {
    // The GPU when there is one (a cost-based choice comes later); cpu and ref fill its gaps.
    p.backends = {gpu, &registry.get("cpu"), &registry.reference()};
  } else if (device == "auto") {
    p.backends = {&registry.get("cpu"), &registry.reference()};
  } else {
    Device d = Device::parse(device);  // throws on anything that is not cpu/cuda[:N]
    Backend* cuda = nullptr;
    for (Backend* b : registry.all())
      if (b->device() == d) cuda = b;
    GPUML_CHECK_KIND(ErrorKind::Unsupported, cuda != nullptr,
                     "--device {}: no CUDA backend: CUDA {} (see `gpuml info`); use --device cpu", device,
                     registry.cuda_status());
    p.backends = {cuda, &registry.get("cpu"), &registry.reference()};
  }
  return p;
}

namespace {

// The device the run computes on, as the user would name it ("cpu", "cuda:0"); "cpu (--device
// auto)" when it was chosen for them.
std::string device_used(const PlanOptions& plan, const std::string& requested) {
  const Backend& b = *plan.backends.front();
  const std::string used = b.device().is_host() ? std::string(b.name()) : b.device().str();
  return used == requested ? used : fmt::format("{} (--device {})", used, requested);
}

// The run's configuration as saved in config.json and the checkpoints, with the class names
// (CSV string labels, image folder names) that predict writes beside the ids.
json run_config_json(const TrainConfig& c, const std::vector<std::string>& class_names) {
  json j = config_to_json(c);
  if (!class_names.empty()) j["class_names"] = class_names;
  return j;
}

nn::Model load_model(const std::string& spec) {
  if (spec == "mlp" || spec == "cnn") return nn::Model::preset(spec);
  GPUML_CHECK(fs::exists(spec), "--model {}: not a preset (mlp, cnn){} and no such JSON or ONNX file", spec,
              did_you_mean(spec, nn::Model::preset_names()));
  return nn::Model::from_json_file(spec);
}

// The whole dataset normalised once: (N, ...) f32 and (N,) i64, for evaluation.
std::pair<Tensor, Tensor> normalised(const data::InMemoryDataset& d, const data::Normalization& norm) {
  data::DataLoaderOptions o;
  o.batch_size = d.size();
  o.shuffle = false;
  o.prefetch_depth = 0;
  o.normalization = norm;
  data::DataLoader loader(d, o);
  loader.start_epoch(0);
  std::optional<data::Batch> b = loader.next();
  return {b->x, b->y};
}

struct Curves {
  std::vector<double> epoch, train_loss, train_acc, eval_loss, eval_acc;
};

void write_plot(const fs::path& path, const Curves& c, const std::string& eval_name) {
  LineChart chart;
  chart.title = "gpuml training";
  chart.x = c.epoch;
  chart.panels.push_back({"loss", "cross-entropy", {{"train", c.train_loss}, {eval_name, c.eval_loss}}});
  chart.panels.push_back({"accuracy", "accuracy", {{"train", c.train_acc}, {eval_name, c.eval_acc}}});
  write_svg_chart(path, chart);
}

// In-memory data (IDX, CSV, NPZ) batched by data::DataLoader, with the optional --val-split.
TrainingData in_memory_data(const TrainConfig& cfg) {
  LoadedData loaded = load_training_data({cfg.data, cfg.csv_label, cfg.csv_fill, true});
  TrainingData d;
  d.sample_shape = loaded.sample_shape;
  d.num_classes = loaded.num_classes;
  d.normalization = loaded.normalization;
  d.description = loaded.description;
  d.class_names = loaded.class_names;
  data::InMemoryDataset fit = loaded.train;
  d.eval = loaded.test;
  if (cfg.val_split > 0) {
    data::TrainValSplit split = data::split_train_val(loaded.train, cfg.val_split, cfg.seed);
    fit = split.train;
    d.eval = split.val;
    d.eval_name = "val";
  }
  data::DataLoaderOptions lo;
  lo.batch_size = cfg.batch_size;
  lo.seed = cfg.seed;
  lo.normalization = loaded.normalization;
  d.train = std::make_unique<data::DataLoader>(fit, lo);
  return d;
}

// A sharded dataset streamed by data::ShardLoader; its test split (if packed) is the eval set.
TrainingData open_shard_data(const TrainConfig& cfg) {
  GPUML_CHECK(cfg.val_split == 0, "--val-split is not supported for the sharded dataset {}: pack a test split instead",
              cfg.data);
  return open_shard_training_data({cfg.data, cfg.batch_size, cfg.seed, cfg.data_memory_limit, cfg.shuffle_buffer});
}

// The signal that asked training to stop. A signal handler can only reach a global; this is the
// one place the trainer keeps one.
std::atomic<int> g_stop_signal{0};
extern "C" void request_stop(int signal) { g_stop_signal.store(signal); }

// Installs the SIGINT/SIGTERM handlers for the scope of a training run (one shot each: a second
// signal gets the default action) and restores the previous ones.
class StopSignals {
 public:
  explicit StopSignals(bool install) : installed_(install) {
    g_stop_signal.store(0);
    if (!installed_) return;
    struct sigaction action {};
    action.sa_handler = request_stop;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    if (!installed_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int received() const { return g_stop_signal.load(); }

 private:
  bool installed_;
  struct sigaction old_int_ {}, old_term_ {};
};

}  // namespace

TrainResult train(const TrainConfig& requested) {
  using Clock = std::chrono::steady_clock;
  TrainConfig cfg = requested;
  std::optional<ResumePoint> resume_point;
  const Checkpoint* resumed = nullptr;
  if (!cfg.resume.empty()) {
    resume_point.emplace(read_resume_point(cfg.resume, requested));
    resumed = &resume_point->checkpoint;
    cfg = resume_point->config;
    if (cfg.out.empty()) cfg.out = fs::path(resume_point->path).parent_path().string();
  }
  GPUML_CHECK(cfg.epochs >= 1, "--epochs must be >= 1, got {}", cfg.epochs);
  GPUML_CHECK(cfg.batch_size >= 1, "--batch-size must be >= 1, got {}", cfg.batch_size);
  GPUML_CHECK(cfg.checkpoint_every >= 0, "--checkpoint-every must be >= 0, got {}", cfg.checkpoint_every);
  GPUML_CHECK(cfg.max_steps >= 0, "--max-steps must be >= 0, got {}", cfg.max_steps);
  GPUML_CHECK(cfg.val_split >= 0 && cfg.val_split < 1, "--val-split must be in [0, 1), got {}", cfg.val_split);
  optim::validate(cfg.optimizer);
  optim::validate(cfg.schedule);
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  PlanOptions plan = plan_options_for_device(cfg.device);
  plan.deterministic = cfg.deterministic;
  // On a GPU the loaders build batches in its pinned host memory (nullptr on CPU: plain memory).
  data::set_batch_memory(plan.backends.front()->pinned_host_allocator());

  // Data and model, checked against each other before anything is written.
  TrainingData loaded = data::is_shard_dataset(cfg.data) ? open_shard_data(cfg) : in_memory_data(cfg);
  // An ONNX file brings its weights: training fine-tunes them (unless --init-from replaces them).
  std::optional<interop::ImportedModel> imported;
  if (!resumed && fs::path(cfg.model).extension() == ".onnx") imported = interop::import_onnx_file(cfg.model);
  nn::Model model = resumed    ? std::move(resume_point->model)
                    : imported ? nn::Model::from_json(imported->model.to_json())
                               : load_model(cfg.model);
  GPUML_CHECK_SHAPE(model.input_shape() == loaded.sample_shape, "the model takes samples of shape {} but {} holds {}{}",
                    shape_str(model.input_shape()), cfg.data, shape_str(loaded.sample_shape),
                    loaded.sample_shape.size() == 1 && model.input_shape().size() > 1
                        ? fmt::format(". Rows of {0} features need a model that takes them: a JSON file such as "
                                      "{{\"input_shape\": [{0}], \"layers\": [{{\"type\": \"Linear\", "
                                      "\"in_features\": {0}, \"out_features\": {1}}}]}} given as --model FILE.json",
                                      loaded.sample_shape[0], std::max<int64_t>(loaded.num_classes, 2))
                        : std::string());
  GPUML_CHECK(model.num_classes() >= loaded.num_classes,
              "the model predicts {} classes but {} has labels up to {}", model.num_classes(), cfg.data,
              loaded.num_classes - 1);
  // --init-from: weights by name, checked against the model before the run directory exists.
  std::optional<NamedTensors> initial_weights;
  if (imported) initial_weights = imported->weights;
  if (!cfg.init_from.empty()) {
    GPUML_CHECK(!resumed, "--init-from and --resume exclude each other: a resumed run continues from its checkpoint");
    try {
      initial_weights = interop::load_weights_file(cfg.init_from);
      interop::check_weights_fit(model.param_infos(), *initial_weights);
    } catch (const Error& e) {
      GPUML_FAIL(e.kind(), "--init-from {}: {}", cfg.init_from, e.message());
    }
  }
  const std::optional<data::InMemoryDataset>& eval_set = loaded.eval;
  const std::string eval_name = loaded.eval_name;

  fs::path run_dir = open_run_dir(cfg);  // train/run_dir.h: new, empty, cleared (--overwrite) or resumed
  write_file_atomically(run_dir / "model.json", model.to_json().dump(2) + "\n");
  write_file_atomically(run_dir / "config.json", run_config_json(cfg, loaded.class_names).dump(2) + "\n");

  ModelRunner runner(model, cfg.optimizer, plan, cfg.seed, cfg.precision);
  runner.set_replay(cfg.cuda_graphs);
  TrainingProgress progress;
  progress.seed = cfg.seed;
  if (resumed) {
    runner.load(resumed->model, resumed->optimizer);
    progress = resumed->progress;
  } else if (initial_weights) {
    runner.load(*initial_weights, {});
  }
  if (!cfg.quiet) {
    fmt::print("data: {}\n", loaded.description);
    fmt::print("{}", nn::model_summary(model, cfg.batch_size, runner.planned_peak_bytes(cfg.batch_size)));
    fmt::print("optimizer: {}, {}, batch {}, device {}, precision {}{}, run directory {}\n",
               optim::describe(cfg.optimizer), count_of(cfg.epochs, "epoch"), cfg.batch_size,
               device_used(plan, cfg.device), precision_name(cfg.precision),
               cfg.deterministic ? " (deterministic)" : "", run_dir.string());
    std::string note = precision_note(cfg.precision, *plan.backends.front());
    if (!note.empty()) fmt::print("note: {}\n", note);
    std::fflush(stdout);  // the summary comes before the progress bar on stderr
  }

  data::BatchSource& loader = *loaded.train;
  auto [eval_x, eval_y] = eval_set ? normalised(*eval_set, loaded.normalization) : std::pair<Tensor, Tensor>{};

  MetricsCsv metrics(run_dir / "metrics.csv");
  TensorBoardWriter tensorboard(run_dir);
  Curves curves;
  if (resumed) {  // continue the run's table and plot rather than starting them over
    metrics.keep_existing(static_cast<size_t>(progress.epoch));
    curves.epoch = metrics.column_values("epoch");
    curves.train_loss = metrics.column_values("train_loss");
    curves.train_acc = metrics.column_values("train_accuracy");
    curves.eval_loss = metrics.column_values(eval_name + "_loss");
    curves.eval_acc = metrics.column_values(eval_name + "_accuracy");
  }
  TrainResult result;
  result.run_dir = run_dir.string();
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  const int64_t total_steps = steps_per_epoch * cfg.epochs;

  StopSignals signals(cfg.save_on_interrupt);
  // last.safetensors, also written mid-epoch (then `progress` holds the loader's position and the
  // epoch's partial sums).
  auto save_last = [&] {
    save_checkpoint(run_dir / "last.safetensors", Checkpoint{runner.model_tensors(), runner.optimizer_tensors(),
                                                             progress, model.to_json().dump(),
                                                             run_config_json(cfg, loaded.class_names).dump()});
  };
  for (int64_t epoch = progress.epoch; epoch < cfg.epochs; ++epoch) {
    const bool mid_epoch = progress.loader_epoch == epoch && progress.loader_batch > 0;
    const int64_t first_batch = mid_epoch ? progress.loader_batch : 0;
    loader.seek({epoch, first_batch});
    ProgressBar bar(fmt::format("epoch {}/{}", epoch + 1, cfg.epochs), steps_per_epoch - first_batch, "samples");
    // A run resumed mid-epoch starts from the sums its checkpoint saved for the epoch's first part.
    double loss_sum = mid_epoch ? progress.epoch_loss_sum : 0, step_seconds = mid_epoch ? progress.epoch_step_seconds : 0;
    int64_t correct = mid_epoch ? progress.epoch_correct : 0, seen = mid_epoch ? progress.epoch_seen : 0;
    const double earlier_seconds = mid_epoch ? progress.epoch_seconds : 0;
    auto epoch_start = Clock::now();
    auto epoch_elapsed = [&] { return earlier_seconds + std::chrono::duration<double>(Clock::now() - epoch_start).count(); };
    bool stop_mid_epoch = false;
    // One batch ahead: the next batch goes to the device on its copy stream while this step
    // computes (on CPU staging does nothing).
    for (std::optional<data::Batch> batch = loader.next(), upcoming; batch; batch = std::move(upcoming)) {
      upcoming = loader.next();
      if (upcoming) runner.stage_train_batch(upcoming->x, upcoming->y);
      double lr = optim::lr_at(cfg.schedule, cfg.optimizer.lr, progress.step, steps_per_epoch, total_steps);
      auto t0 = Clock::now();
      // Each step moves the dropout stream by 2^32 Philox blocks: masks never repeat.
      StepStats s = runner.train_step(batch->x, batch->y, lr, progress.step + 1, (progress.step + 1) << 32);
      step_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      GPUML_CHECK(std::isfinite(s.loss),
                  "the loss became {} at step {} (epoch {}, batch {}); training stopped. {}. Try a lower --lr or "
                  "--clip-grad-norm",
                  s.loss, progress.step + 1, epoch + 1, batch->index + 1,
                  fs::exists(run_dir / "last.safetensors")
                      ? fmt::format("The last good checkpoint is {}", (run_dir / "last.safetensors").string())
                      : fmt::format("No checkpoint was written before it (none is in {})", run_dir.string()));
      ++progress.step;
      int64_t b = batch->y.dim(0);
      loss_sum += s.loss * static_cast<double>(b);
      correct += s.correct;
      seen += b;
      if (!cfg.quiet)
        bar.advance(1, b, fmt::format("loss {:.4f} acc {:.4f}", loss_sum / seen, double(correct) / seen));

      const bool last_batch = batch->index + 1 == steps_per_epoch;
      result.interrupted_by = signals.received();
      result.stopped_at_max_steps = cfg.max_steps > 0 && progress.step >= cfg.max_steps;
      const bool stop = result.interrupted_by != 0 || result.stopped_at_max_steps;
      if (!last_batch && (stop || (cfg.checkpoint_every > 0 && progress.step % cfg.checkpoint_every == 0))) {
        progress.loader_epoch = epoch;
        progress.loader_batch = batch->index + 1;
        progress.epoch_loss_sum = loss_sum;
        progress.epoch_correct = correct;
        progress.epoch_seen = seen;
        progress.epoch_seconds = epoch_elapsed();
        progress.epoch_step_seconds = step_seconds;
        save_last();
      }
      if (stop && !last_batch) {
        stop_mid_epoch = true;
        break;
      }
    }
    if (stop_mid_epoch) {
      if (!cfg.quiet) bar.finish("stopped");
      result.seconds_training += epoch_elapsed() - earlier_seconds;
      break;
    }
    // Wall time of the epoch's training loop: steps plus any wait for data (no evaluation, no I/O).
    double epoch_seconds = epoch_elapsed();
    result.seconds_training += epoch_seconds - earlier_seconds;
    result.train_loss = seen ? loss_sum / seen : NAN;
    result.train_accuracy = seen ? double(correct) / seen : NAN;
    if (eval_set) {
      EvalStats e = runner.evaluate(eval_x, eval_y);
      result.eval_loss = e.loss_sum / e.count;
      result.eval_accuracy = double(e.correct) / e.count;
    } else {
      result.eval_loss = result.train_loss;
      result.eval_accuracy = result.train_accuracy;
    }
    // The share of the loop not spent in steps: waiting for the loader (and the loop's bookkeeping).
    const double data_wait = std::max(0.0, 1.0 - step_seconds / std::max(epoch_seconds, 1e-9));
    if (!cfg.quiet)
      bar.finish(fmt::format("loss {:.4f} acc {:.4f} | {} loss {:.4f} acc {:.4f} | data wait {:.1f}%",
                             result.train_loss, result.train_accuracy, eval_name, result.eval_loss,
                             result.eval_accuracy, 100.0 * data_wait));
    ++result.epochs_run;

    // Logs.
    metrics.append({{"epoch", epoch + 1}, {"step", progress.step}, {"train_loss", result.train_loss},
                    {"train_accuracy", result.train_accuracy}, {eval_name + "_loss", result.eval_loss},
                    {eval_name + "_accuracy", result.eval_accuracy}, {"epoch_seconds", epoch_seconds},
                    {"step_seconds", step_seconds},
                    {"data_wait_fraction", data_wait},
                    {"samples_per_second", seen / std::max(epoch_seconds, 1e-9)}});
    tensorboard.add_scalar("train/loss", epoch + 1, result.train_loss);
    tensorboard.add_scalar("train/accuracy", epoch + 1, result.train_accuracy);
    tensorboard.add_scalar(eval_name + "/loss", epoch + 1, result.eval_loss);
    tensorboard.add_scalar(eval_name + "/accuracy", epoch + 1, result.eval_accuracy);
    curves.epoch.push_back(double(epoch + 1));
    curves.train_loss.push_back(result.train_loss);
    curves.train_acc.push_back(result.train_accuracy);
    curves.eval_loss.push_back(result.eval_loss);
    curves.eval_acc.push_back(result.eval_accuracy);
    write_plot(run_dir / "curves.svg", curves, eval_name);

    // Checkpoints: last always, best (and model.safetensors for PyTorch) when it improved.
    progress.epoch = epoch + 1;
    progress.loader_epoch = epoch + 1;
    progress.loader_batch = 0;
    progress.epoch_loss_sum = progress.epoch_seconds = progress.epoch_step_seconds = 0;
    progress.epoch_correct = progress.epoch_seen = 0;
    bool improved = result.eval_accuracy > progress.best_metric || progress.best_epoch == 0;
    if (improved) {
      progress.best_metric = result.eval_accuracy;
      progress.best_epoch = epoch + 1;
      progress.epochs_without_improvement = 0;
    } else {
      ++progress.epochs_without_improvement;
    }
    Checkpoint ck{runner.model_tensors(), runner.optimizer_tensors(), progress, model.to_json().dump(),
                  run_config_json(cfg, loaded.class_names).dump()};
    save_checkpoint(run_dir / "last.safetensors", ck);
    if (improved) {
      save_checkpoint(run_dir / "best.safetensors", ck);
      save_safetensors(run_dir / "model.safetensors", ck.model, {{"format", "pt"}});
    }
    if (result.interrupted_by != 0 || result.stopped_at_max_steps) break;  // at an epoch's end: all saved
    if (cfg.patience > 0 && progress.epochs_without_improvement >= cfg.patience) {
      if (!cfg.quiet)
        fmt::print("early stop: no better {} accuracy for {} epochs (best {:.4f} at epoch {})\n", eval_name,
                   cfg.patience, progress.best_metric, progress.best_epoch);
      result.stopped_early = true;
      break;
    }
  }
  result.best_accuracy = progress.best_metric;
  if (plan.backends.front()->can_capture()) {
    std::string why;
    ReplayStats replay = runner.replay_stats(&why);
    result.replay_summary =
        !cfg.cuda_graphs ? "CUDA graphs off (--no-cuda-graphs)"
        : replay.captures > 0
            ? fmt::format("CUDA graphs: {} captured, {} of {} runs replayed", replay.captures, replay.replays,
                          replay.replays + replay.eager)
            : fmt::format("CUDA graphs: none replayed{}", why.empty() ? std::string() : ": " + why);
  }
  return result;
}

}  // namespace gpuml
