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
  const std::string metric = st.task.metric_name();
  curves_.train_metric = metrics_->column_values("train_" + metric);
  if (st.eval_name.empty()) return;
  curves_.eval_loss = metrics_->column_values(st.eval_name + "_loss");
  curves_.eval_metric = metrics_->column_values(st.eval_name + "_" + metric);
}

void RunLogs::on_epoch_end(TrainState& st) {
  if (!metrics_) return;
  const EpochSummary& e = st.epoch_summary;
  const std::string& ev = st.eval_name;  // empty: no held-out data, no columns for it
  const std::string metric = st.task.metric_name();  // accuracy, rmse, perplexity
  MetricsRow row{{"epoch", e.epoch}, {"step", st.progress.step}, {"train_loss", e.train_loss},
                 {"train_" + metric, e.train_metric}};
  if (!ev.empty()) row.insert(row.end(), {{ev + "_loss", e.eval_loss}, {ev + "_" + metric, e.eval_metric}});
  row.insert(row.end(), {{"epoch_seconds", e.seconds}, {"step_seconds", e.step_seconds},
                         {"data_wait_fraction", e.data_wait}, {"samples_per_second", e.samples_per_second},
                         {"lr", e.lr}});
  metrics_->append(row);
  tensorboard_->add_scalar("train/loss", e.epoch, e.train_loss);
  tensorboard_->add_scalar("train/" + metric, e.epoch, e.train_metric);
  tensorboard_->add_scalar("train/lr", e.epoch, e.lr);
  curves_.epoch.push_back(double(e.epoch));
  curves_.train_loss.push_back(e.train_loss);
  curves_.train_metric.push_back(e.train_metric);
  LineChart chart;
  chart.title = "gpuml training";
  chart.x = curves_.epoch;
  const bool squared = st.task.kind() == TaskKind::regression;
  chart.panels.push_back({"loss", squared ? "mean squared error" : "cross-entropy", {{"train", curves_.train_loss}}});
  chart.panels.push_back({metric, metric, {{"train", curves_.train_metric}}});
  if (!ev.empty()) {
    tensorboard_->add_scalar(ev + "/loss", e.epoch, e.eval_loss);
    tensorboard_->add_scalar(ev + "/" + metric, e.epoch, e.eval_metric);
    curves_.eval_loss.push_back(e.eval_loss);
    curves_.eval_metric.push_back(e.eval_metric);
    chart.panels[0].series.push_back({ev, curves_.eval_loss});
    chart.panels[1].series.push_back({ev, curves_.eval_metric});
  }
  write_svg_chart(st.run_dir / "curves.svg", chart);
}

}  // namespace gpuml
