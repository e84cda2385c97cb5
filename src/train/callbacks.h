// The callbacks behind `gpuml train` (train/callback.h has the interface): each does one thing a
// run leaves behind, and add_command_line_callbacks installs the set the command line uses, in
// the order that matters (a stop request is seen before the checkpoint that records it).
//
//   Trainer trainer(cfg);
//   add_command_line_callbacks(trainer, {.log = stdout, .progress = stderr});
//   TrainResult r = trainer.fit();
#pragma once

#include <cstdio>
#include <memory>
#include <optional>

#include "io/metrics_csv.h"
#include "io/tensorboard.h"
#include "train/callback.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace gpuml {

// The run's header (data, model summary, optimizer line, notes), a progress bar per epoch, and
// the early-stop line, to `log` and `bar` (either may be nullptr).
class ProgressPrinter : public Callback {
 public:
  ProgressPrinter(Trainer& trainer, std::FILE* log, std::FILE* bar) : trainer_(trainer), log_(log), out_(bar) {}
  void on_train_begin(TrainState& st) override;
  void on_epoch_begin(TrainState& st) override;
  void on_step_end(TrainState& st) override;
  void on_step_evaluated(TrainState& st) override;
  void on_epoch_stopped(TrainState& st) override;
  void on_epoch_end(TrainState& st) override;
  void on_train_end(TrainState& st) override;

 private:
  Trainer& trainer_;  // for the planned memory in the summary
  std::FILE* log_;
  std::FILE* out_;
  std::optional<ProgressBar> bar_;
};

// The run directory (train/run_dir.h: made ready, or named and created when config.out is empty;
// TrainState::run_dir then holds it for the callbacks after this one), its model.json and
// config.json, and per epoch metrics.csv, a TensorBoard event file and curves.svg; a resumed
// run continues the table and the plot. Without held-out data there are no test/val columns.
// --eval-every's figures go to steps.csv (step, lr, rows, loss, metric) and TensorBoard.
class RunLogs : public Callback {
 public:
  void on_train_begin(TrainState& st) override;
  void on_step_evaluated(TrainState& st) override;
  void on_epoch_end(TrainState& st) override;

 private:
  struct Curves {
    std::vector<double> epoch, train_loss, train_metric, eval_loss, eval_metric;
  };
  std::optional<MetricsCsv> metrics_, steps_;
  std::optional<TensorBoardWriter> tensorboard_;
  Curves curves_;
};

// last.safetensors at each epoch's end (and every --checkpoint-every steps, and where a stop
// request left the epoch, with the loader's position); best.safetensors and model.safetensors
// (the weights alone, for PyTorch) when the evaluation metric improved. Without held-out data
// there is no best.safetensors (eval, predict and export read last.safetensors) and
// model.safetensors is the last epoch's.
class Checkpoints : public Callback {
 public:
  void on_step_end(TrainState& st) override;
  void on_epoch_end(TrainState& st) override;
};

// Stops after `patience` epochs without a better evaluation metric (higher accuracy, lower RMSE
// or perplexity).
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(int64_t patience) : patience_(patience) {}
  void on_epoch_end(TrainState& st) override;

 private:
  int64_t patience_;
};

// SIGINT/SIGTERM (Ctrl-C, a scheduler's preemption) finish the current step and stop, so the
// Checkpoints callback after it writes where the run stopped. The handlers are installed for the
// length of fit() (one shot each: a second signal gets the default action), then restored.
class StopOnSignals : public Callback {
 public:
  StopOnSignals();
  ~StopOnSignals() override;
  void on_train_begin(TrainState& st) override;
  void on_step_end(TrainState& st) override;
  void on_train_end(TrainState& st) override;

 private:
  void restore();
  struct Saved;
  std::unique_ptr<Saved> saved_;
  bool installed_ = false;
};

struct CommandLineOutput {
  std::FILE* log = stdout;       // the header and notes; nullptr: none
  std::FILE* progress = stderr;  // the progress bars; nullptr: none
};

// What `gpuml train` installs: StopOnSignals (if config.save_on_interrupt), RunLogs,
// ProgressPrinter, Checkpoints, EarlyStopping (if config.patience > 0).
void add_command_line_callbacks(Trainer& trainer, const CommandLineOutput& output);

// A Trainer with the command line's callbacks, run: `gpuml train` (quiet: no header, no bars).
// `parallel`: this process's rank among several (data parallelism), or none.
TrainResult train(const TrainConfig& config, DataParallel parallel = {});

}  // namespace gpuml
