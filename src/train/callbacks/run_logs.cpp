#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "io/svg_plot.h"
#include "nn/model.h"
#include "train/callbacks.h"
#include "train/run_dir.h"

namespace gpuml {

namespace fs = std::filesystem;

void RunLogs::on_train_begin(TrainState& st) {
  if (!st.primary) return;
  st.run_dir = open_run_dir(*st.config);  // new, empty, cleared (--overwrite), or the resumed run's
  write_file_atomically(st.run_dir / "model.json", st.model->to_json().dump(2) + "\n");
  write_file_atomically(st.run_dir / "config.json", st.config_json(2) + "\n");
  metrics_.emplace(st.run_dir / "metrics.csv");
  tensorboard_.emplace(st.run_dir);
  if (!st.resumed) return;
  // Continue the run's table and plot rather than starting them over.
  metrics_->keep_existing(static_cast<size_t>(st.progress.epoch));
  curves_.epoch = metrics_->column_values("epoch");
  curves_.train_loss = metrics_->column_values("train_loss");
  curves_.train_acc = metrics_->column_values("train_accuracy");
  if (st.eval_name.empty()) return;
  curves_.eval_loss = metrics_->column_values(st.eval_name + "_loss");
  curves_.eval_acc = metrics_->column_values(st.eval_name + "_accuracy");
}

void RunLogs::on_epoch_end(TrainState& st) {
  if (!metrics_) return;
  const EpochSummary& e = st.epoch_summary;
  const std::string& ev = st.eval_name;  // empty: no held-out data, no columns for it
  MetricsRow row{{"epoch", e.epoch}, {"step", st.progress.step}, {"train_loss", e.train_loss},
                 {"train_accuracy", e.train_accuracy}};
  if (!ev.empty()) row.insert(row.end(), {{ev + "_loss", e.eval_loss}, {ev + "_accuracy", e.eval_accuracy}});
  row.insert(row.end(), {{"epoch_seconds", e.seconds}, {"step_seconds", e.step_seconds},
                         {"data_wait_fraction", e.data_wait}, {"samples_per_second", e.samples_per_second},
                         {"lr", e.lr}});
  metrics_->append(row);
  tensorboard_->add_scalar("train/loss", e.epoch, e.train_loss);
  tensorboard_->add_scalar("train/accuracy", e.epoch, e.train_accuracy);
  tensorboard_->add_scalar("train/lr", e.epoch, e.lr);
  curves_.epoch.push_back(double(e.epoch));
  curves_.train_loss.push_back(e.train_loss);
  curves_.train_acc.push_back(e.train_accuracy);
  LineChart chart;
  chart.title = "gpuml training";
  chart.x = curves_.epoch;
  chart.panels.push_back({"loss", "cross-entropy", {{"train", curves_.train_loss}}});
  chart.panels.push_back({"accuracy", "accuracy", {{"train", curves_.train_acc}}});
  if (!ev.empty()) {
    tensorboard_->add_scalar(ev + "/loss", e.epoch, e.eval_loss);
    tensorboard_->add_scalar(ev + "/accuracy", e.epoch, e.eval_accuracy);
    curves_.eval_loss.push_back(e.eval_loss);
    curves_.eval_acc.push_back(e.eval_accuracy);
    chart.panels[0].series.push_back({ev, curves_.eval_loss});
    chart.panels[1].series.push_back({ev, curves_.eval_acc});
  }
  write_svg_chart(st.run_dir / "curves.svg", chart);
}

}  // namespace gpuml
