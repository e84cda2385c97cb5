// The training loop's extension points (train/trainer.h). The loop itself only steps, evaluates
// and keeps its progress; everything a run leaves behind is a callback: the progress bar and
// summary, metrics.csv, TensorBoard, the SVG curves, checkpoints, early stopping and the stop on
// SIGINT/SIGTERM (train/callbacks.h has those, and the set the command line installs).
//
// Callbacks run in the order they were added, each hook after the loop has updated the state it
// describes. A callback may ask the loop to stop (the stop fields of TrainState); the loop stops
// after the current step, and a callback later in the order sees the request in the same hook.
//
//   struct LossPrinter : Callback {
//     void on_epoch_end(TrainState& s) override { fmt::print("{}\n", s.epoch_summary.train_loss); }
//   };
//   trainer.add_callback(std::make_shared<LossPrinter>());
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/task.h"
#include "train/train_config.h"

namespace gpuml {

namespace nn {
class Model;
}
class ModelRunner;

// One finished epoch's figures. The metric is the task's (TrainState::task): accuracy, RMSE or
// perplexity.
struct EpochSummary {
  int64_t epoch = 0;  // 1-based: the epoch that just finished
  double train_loss = 0, train_metric = 0;
  double eval_loss = NAN, eval_metric = NAN;  // on the evaluation set (NaN without one)
  double lr = 0;                            // the learning rate of the epoch's last step
  double seconds = 0;       // wall time of the epoch's training loop (steps and waiting for data)
  double step_seconds = 0;  // of which in steps
  double data_wait = 0;     // the share of the loop not spent in steps
  double samples_per_second = 0;
  bool improved = false;    // a new best evaluation metric (never without an evaluation set)
};

struct TrainState {
  using Clock = std::chrono::steady_clock;

  // The run: fixed for its length.
  const TrainConfig* config = nullptr;
  const nn::Model* model = nullptr;
  ModelRunner* runner = nullptr;
  std::filesystem::path run_dir;
  std::string eval_name = "test";   // "test", "val" (--val-split), or empty: no held-out data, no evaluation
  std::string split_note;           // how the evaluation rows were chosen (a held-out 10%), or empty
  std::string data_description;     // one line: "fashion-mnist IDX: 60000 train, 10000 test"
  std::vector<std::string> class_names;
  std::string tokenizer_json;  // token datasets: written into config.json and checkpoints as "tokenizer"
  Task task;              // what the model learns: the loss and the metric (train/task.h)
  std::string task_note;  // "task: classification (auto: integer labels, 10 classes), metric accuracy"
  bool resumed = false;
  std::string resumed_from;  // the checkpoint --resume read
  int64_t saved_epochs = 0;  // the epochs the resumed run was configured with (--epochs may change them)
  std::string weights_from;  // a new run's starting weights: "--init-from FILE", "the ONNX model FILE"; empty: initialised
  // The process that writes files and progress (false on the other ranks of data parallelism).
  bool primary = true;
  int64_t steps_per_epoch = 0;

  // Where the loop is. `progress` is what a checkpoint saves: at an epoch's end it counts that
  // epoch as done.
  TrainingProgress progress;
  int64_t epoch = 0;        // 0-based, the epoch being trained
  int64_t first_batch = 0;  // of this epoch in this process (> 0 when resumed mid-epoch)

  // The step just taken (on_step_end).
  int64_t batch_index = 0, batch_rows = 0;
  bool last_batch = false;  // of the epoch
  double lr = 0, step_loss = 0;

  // Sums over the epoch so far (including a resumed epoch's first part): the task's loss, weight
  // and score, and the rows seen.
  TaskSums sums;
  double step_seconds = 0;
  double earlier_seconds = 0;  // the epoch's time before it was resumed
  Clock::time_point epoch_start;

  EpochSummary epoch_summary;  // on_epoch_end

  // The held-out figures of on_step_evaluated (--eval-every): after step `step`, on `rows` rows.
  struct StepEvaluation {
    int64_t step = 0, rows = 0;
    double loss = NAN, metric = NAN;
  } step_evaluation;

  // Why the loop stops after this step (any of them set): a signal (StopOnSignals), the
  // --max-steps budget, early stopping, or Trainer::request_stop.
  int stop_signal = 0;
  bool at_max_steps = false, stop_early = false, stop_requested = false;
  bool stopping() const { return stop_signal != 0 || at_max_steps || stop_early || stop_requested; }

  // What the run reports about itself (the command line's summary prints them).
  std::string device_used;     // "cpu", "cuda:0"
  std::string precision_note;  // a warning about the precision on this device, or empty

  // Wall time of this epoch's training loop so far, a resumed epoch's earlier part included.
  double epoch_seconds() const;
  // `progress` with the loader's position after the current step and the epoch's partial sums:
  // what a mid-epoch checkpoint saves, so that --resume continues inside the epoch.
  TrainingProgress mid_epoch_progress() const;
  // The run's configuration as saved in config.json and the checkpoints, with the class names.
  std::string config_json(int indent = -1) const;
  // Everything --resume needs, with `p` as the progress.
  Checkpoint checkpoint(const TrainingProgress& p) const;
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainState&) {}
  virtual void on_epoch_begin(TrainState&) {}
  virtual void on_step_begin(TrainState&) {}
  virtual void on_step_end(TrainState&) {}
  // After on_step_end, every config->eval_every steps: step_evaluation holds the figures.
  virtual void on_step_evaluated(TrainState&) {}
  // The epoch was left before its end (a stop request); on_epoch_end does not follow.
  virtual void on_epoch_stopped(TrainState&) {}
  virtual void on_epoch_end(TrainState&) {}
  virtual void on_train_end(TrainState&) {}
};

}  // namespace gpuml
