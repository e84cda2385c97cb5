// The training loop: data, model, optimizer and schedule from one TrainConfig (or a model and
// arrays given in memory); fit() steps through the epochs, evaluates on the test set or the
// --val-split, keeps its progress (best metric, loader position) and calls its callbacks,
// which do everything a run leaves behind (train/callback.h, train/callbacks.h). The library
// prints nothing and installs no signal handler; the command line adds callbacks that do.
// A NaN/Inf loss stops training naming the step.
//
// A Trainer holds no process-wide state: its thread count applies to the threads that call it,
// its batches come from its own memory, so two trainers may run at once on two threads.
//
//   TrainConfig cfg;
//   cfg.data = "/usr/share/datasets/fashion-mnist";
//   cfg.model = "cnn";
//   cfg.epochs = 3;
//   Trainer trainer(cfg);
//   add_command_line_callbacks(trainer, {});   // files and checkpoints, as `gpuml train` writes
//   TrainResult r = trainer.fit();             // r.eval_metric (accuracy here), r.run_dir
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "backend/communicator.h"
#include "data/dataset.h"
#include "graph/planner.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "train/callback.h"
#include "train/device_choice.h"
#include "train/model_runner.h"
#include "train/train_config.h"

namespace gpuml {

struct TrainResult {
  std::string run_dir;
  int64_t epochs_run = 0;
  // The task's metric (metric_name: accuracy, rmse, perplexity; train/task.h).
  std::string task, metric_name;
  double train_loss = 0, train_metric = 0;
  // On the test set or the validation split; NaN when there is neither (--val-split 0 on data
  // without a test split).
  double eval_loss = NAN, eval_metric = NAN;
  double best_metric = NAN;
  double seconds_training = 0;  // wall time of the training loops (no evaluation or checkpoint I/O)
  bool stopped_early = false;
  bool stopped_at_max_steps = false;
  int interrupted_by = 0;       // the signal that stopped training (SIGINT, SIGTERM), or 0
  bool stop_requested = false;  // Trainer::request_stop
  // On a backend that captures (CUDA): how many steps replayed a CUDA graph, or why none did.
  std::string replay_summary;
  // Data parallelism: this rank's gradient all-reduce, per step: the buckets, the time inside the
  // collectives, the part of it that overlapped backward, and how long the update waited for it.
  std::string all_reduce_summary;
};

// What a Trainer takes from memory instead of from the files its TrainConfig names.
struct TrainerInputs {
  std::optional<nn::Model> model;              // instead of config.model
  // Instead of config.data: features (N, ...) and labels (N, ...), the task's targets (train/task.h).
  std::optional<data::InMemoryDataset> train;
  std::optional<data::InMemoryDataset> eval;   // with `train`: the evaluation set (else --val-split or none)
};

// Data parallelism: this process is one rank of `communicator` (backend/communicator.h). Each rank
// trains on its config.batch_size rows of every global batch of world_size * batch_size (in-memory
// data only), gradients are averaged over the ranks, every rank starts from rank 0's weights, and
// only rank 0 is primary (writes files and progress). Ranks started with another configuration
// are refused. No communicator, or one rank: one process, as before.
// On a GPU with several ranks NCCL carries the gradients in device memory (backend/communicator.h,
// choose_gradient_engine) and `communicator` the host-side collectives; `gradient_engine` is
// GPUML_COMM's request ("auto", "nccl": even for one rank, "host").
struct DataParallel {
  std::shared_ptr<Communicator> communicator;
  std::chrono::milliseconds collective_timeout{std::chrono::minutes(5)};  // each collective's deadline
  std::string gradient_engine = "auto";
  int local_rank = 0;  // this process's rank on its machine: --device cuda/auto takes that GPU
};

class Trainer {
 public:
  // Reads the data and the model (or the checkpoint config.resume names) and checks them against
  // each other; writes nothing. Throws gpuml::Error naming what does not fit.
  explicit Trainer(TrainConfig config, TrainerInputs inputs = {}, DataParallel parallel = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void add_callback(std::shared_ptr<Callback> callback);
  // Whether this process writes files and progress (callbacks read TrainState::primary); with a
  // communicator of several ranks the default is rank 0 only.
  void set_primary(bool primary);
  // Trains config().epochs epochs (from where a resumed run stopped).
  TrainResult fit();
  // Asks fit() to stop after the current step; safe from any thread.
  void request_stop();

  // The task's sums (loss, metric: task().mean_loss, task().metric) on a dataset, its features
  // scaled by the one input rule for their own dtype (Task::input_normalization: uint8 images to
  // [0, 1], other dtypes as given); its labels are checked and made the task's targets first.
  // With a communicator of several ranks it is a collective, as the evaluation inside fit() is:
  // every rank calls it with the same data, evaluates its part of the rows, and gets the sums over
  // all of them (added in float64), one process's figures.
  TaskSums evaluate(const data::InMemoryDataset& data);
  // What the task predicts (class probabilities (N, C), ...) for features (N, ...), scaled by the
  // same rule (whatever dtype the training data had).
  Tensor predict(const Tensor& features);
  // The task the run trains (resolved from config.task against the data and the model).
  const Task& task() const;

  // After --resume: the saved run's configuration (with this command's epochs etc.).
  const TrainConfig& config() const;
  const nn::Model& model() const;
  const std::filesystem::path& run_dir() const;
  // The parameters and buffers under their PyTorch names (host copies).
  NamedTensors weights() const;
  // What a checkpoint saves now (weights, optimizer state, progress, model, configuration):
  // save_checkpoint() it for `gpuml eval|predict|export` and --resume.
  Checkpoint checkpoint() const;
  // "cpu", "cuda:0"; "cpu (--device auto)" when the choice was made for the user.
  std::string device_used() const;
  const PlanOptions& plan() const;
  size_t planned_peak_bytes();
  const std::string& data_description() const;
  // After --resume by another number of processes than saved the run: why its data order changes
  // (train/resume.h adapt_to_world_size); "" otherwise.
  const std::string& resume_warning() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpuml
