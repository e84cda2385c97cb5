// Runs a model for training, evaluation and prediction as cached, planned graphs.
//
// All trainable parameters live in one flat optimizer state (S, P) f32: row 0 holds every
// parameter flattened in state_dict order, rows 1.. the optimizer's slots (momentum, Adam m/v).
// The training step is one graph: forward, loss, autodiff, the concatenated gradient and the
// fused optimizer update, whose output (the new state) is written straight into the second of two
// state buffers; the buffers swap every step. Parameters are views of the state, never copies.
// One plan per batch size is cached (the last, smaller batch gets its own).
//
// Data parallelism (set_communicator with several ranks) splits that step in two graphs: the
// first ends at each parameter's gradient, and the second is the optimizer update alone. Between
// them the gradients are averaged over the ranks by all-reduces on the host, in buckets started
// while backward still runs (train/gradient_buckets.h): the executor hands each gradient over as
// soon as the step that writes it has run (RunOptions::on_output_ready), and it is copied into the
// bucket's host buffer, which the update then reads in place on CPU. Splitting keeps the
// gradients' collectives out of the graph IR (nothing a CUDA graph would capture) and leaves one
// process's fused step as it was. The gradient graph differentiates loss x weight (rows, or
// counted tokens), the sum over this rank's rows rather than its mean; the ranks' sums are added
// and divided by the total weight once: the mean over the global batch, what one process with the
// whole batch computes, up to the order of the float additions.
//
// Synchronised BatchNorm (set_sync_batch_norm) is the exception to collectives outside the graph:
// its statistics are needed mid-forward, so its all_reduce_sum ops sit in the gradient graph and
// run on the training thread. Their backward adds the ranks' upstream gradients unweighted, which
// is right because each rank differentiates its share of the global sum (loss x weight). A plan
// holding such an op does not overlap: its buckets are launched only after the gradient graph's
// run has ended, in the fixed bucket order, so that the communicator is never used by two threads
// at once and every rank issues its collectives in the same order (graph's, then buckets').
//
// With a gradient communicator on the model's GPU (NCCL) the gradients stay in device memory:
// gathered into one buffer once the gradient graph's run has ended, all-reduced there with the
// loss sums in one call and divided by the total weight, with no host copy (no buckets, no overlap).
//
//   ModelRunner runner(model, opt_config, plan_options, /*seed*/ 0);
//   StepStats s = runner.train_step(batch.x, batch.y, lr, /*step*/ 1, /*rng_offset*/ 0);
//   EvalStats e = runner.evaluate(test_x, test_y);
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/communicator.h"
#include "graph/executor.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "optim/optimizer.h"
#include "train/gradient_buckets.h"
#include "train/precision.h"
#include "train/task.h"

namespace gpuml {

struct StepStats {
  // With several ranks, every field is over the global batch (all ranks' rows).
  double loss = 0.0;    // the task's mean loss over the batch
  double weight = 0.0;  // what it averages over: rows, or counted tokens (train/task.h)
  double score = 0.0;   // classification: argmax == label count; else 0
  int64_t rows = 0;     // the batch's rows
};

class ModelRunner {
 public:
  // `precision` (train/precision.h) applies to every graph it builds: training, eval, predict;
  // `task` (train/task.h) gives the targets, the loss and the metric's sums.
  ModelRunner(const nn::Model& model, optim::OptimizerConfig optimizer, PlanOptions plan, uint64_t seed,
              Precision precision = Precision::fp32, Task task = Task());
  ~ModelRunner();

  // One optimizer step on a batch x (B, ...) f32 and its targets y (the task's target_shape and
  // target_dtype). `step` counts from 1 (Adam's bias correction); `rng_offset` moves every
  // dropout mask.
  StepStats train_step(const Tensor& x, const Tensor& y, double lr, int64_t step, uint64_t rng_offset);
  // Data parallelism: train_step() averages gradients over `comm`'s ranks, each collective waiting
  // at most `timeout` for the others. nullptr or one rank: the single fused step.
  // `gradients`, when given, carries the gradients instead of `comm` (NCCL on the model's GPU,
  // whose memory_device() must be the home backend's device), even for one rank: then the step is
  // split as for several (what the GPU check times against the fused step).
  void set_communicator(std::shared_ptr<Communicator> comm, std::chrono::milliseconds timeout,
                        std::shared_ptr<Communicator> gradients = nullptr);
  // Data parallelism: a gradient bucket closes once it holds this many bytes (> 0; the default
  // kDefaultGradientBucketBytes). Every rank must use the same size.
  void set_gradient_bucket_bytes(size_t bytes);
  // Data parallelism: the all-reduces' times so far (nullptr before the first step or with one
  // process).
  const AllReduceTimes* all_reduce_times() const;
  // Every rank takes rank 0's parameters, optimizer state and buffers, so that all start from the
  // same point whatever each initialised or loaded.
  void broadcast_state_from_rank0();
  // Data parallelism, --zero 1 (ZeRO stage 1's work split): each rank updates only its 1/N of the
  // state's columns (parameters and optimizer slots), from the all-reduced gradient, and the
  // ranks then all-gather the new parameters. The update's work is split; the optimizer slots of
  // the other ranks' columns go stale here until gather_sharded_state() (the full-size state
  // buffers stay allocated: memory is not saved yet). The same numbers as without it (with more
  // than 2 ranks and no clipping, to rounding: the reduce-scatter adds in another order). Over
  // MPI or Gloo on CPUs only (not NCCL); with one process it changes nothing.
  void set_zero(int stage);
  // Collective under --zero 1 (every rank calls it at the same point): every rank's columns of
  // the optimizer slots gathered, so that optimizer_tensors() is whole. Otherwise nothing.
  void gather_sharded_state();
  // BatchNorm under data parallelism. Off (PyTorch DDP's default): each rank normalises with its
  // own batch's statistics, and after every step all ranks take rank 0's running statistics. On
  // (--sync-batchnorm): the statistics are over every rank's batch (all_reduce_sum ops in the
  // gradient graph), so N ranks train exactly as one process with the whole batch, running
  // statistics included. With one process it changes nothing.
  void set_sync_batch_norm(bool on);
  // Starts copying the batch a later train_step() will take to the device, on a copy stream, so
  // that it travels while the current step computes (Executor::stage; nothing on CPU). x and y
  // must stay unchanged until that train_step() returns.
  void stage_train_batch(const Tensor& x, const Tensor& y);
  // The task's sums (loss, weight, score) in eval mode, in batches of `batch_size`.
  TaskSums evaluate(const Tensor& x, const Tensor& y, int64_t batch_size = 1000);
  // What the task predicts (Task::predict) in eval mode: class probabilities (N, C), token
  // probabilities (N, T, V), or regression values (N, K...). `logits`: the model's output itself,
  // before the task's softmax.
  Tensor predict(const Tensor& x, int64_t batch_size = 1000, bool logits = false);

  // The (S, P) state (parameters, then optimizer slots) as a host copy, and the column where
  // parameter `name` starts; for tests and tools that check the layout.
  Tensor state_snapshot() const;
  int64_t state_offset(const std::string& name) const;
  // Whether runs capture their steps once and replay them (CUDA graphs; RunOptions::replay).
  // Where the backend cannot capture (CPUs), runs are eager either way.
  void set_replay(bool on) { replay_ = on; }
  // Summed over the cached plans; `note` gets the first reason a plan does not replay.
  ReplayStats replay_stats(std::string* note = nullptr) const;
  // Planned peak bytes of the training step for a batch size (plans it if needed).
  size_t planned_peak_bytes(int64_t batch_size);

  // Parameters and buffers under their PyTorch names (host copies), and the optimizer slots
  // under "optimizer.<slot>.<name>".
  NamedTensors model_tensors() const;
  NamedTensors optimizer_tensors() const;
  // Loads tensors by name; every model tensor must be present with its exact shape (errors name
  // what is missing, extra or mis-shaped). Optimizer tensors are optional (fresh state if empty).
  void load(const NamedTensors& model, const NamedTensors& optimizer);

 private:
  static constexpr int64_t kParamAlignment = 64;  // floats: each parameter 256-byte aligned in the state
  struct Slot {
    std::string name;
    Shape shape;
    int64_t offset = 0, numel = 0;
  };
  struct Compiled;
  // Train: the fused step. Gradient and Update: its two halves, with an all-reduce between them.
  enum class Mode { Train, Eval, Predict, Logits, Gradient, Update, UpdateShard };
  Compiled& compiled(Mode mode, const Shape& x_shape);
  std::unique_ptr<Compiled> build(Mode mode, const Shape& x_shape);
  StepStats stats_of(const Compiled& c, const std::vector<Tensor>& out, int64_t rows) const;
  std::map<std::string, Tensor> buffer_feeds() const;
  RunOptions replay_options() const;
  std::unique_ptr<Compiled> build_update(int64_t columns);
  void update_sharded(const std::map<std::string, Tensor>& feeds);
  void gather_row(float* row, const char* what);
  bool zero_active() const { return zero_ && comm_ != nullptr && !gradient_comm_; }
  // --zero 1 without clipping: the buckets reduce-scatter (each rank needs only its share's sum);
  // clipping needs the whole gradient's norm on every rank, so it all-reduces.
  bool scatters() const { return zero_active() && optimizer_.clip_grad_norm == 0.0; }
  StepStats train_step_data_parallel(const Tensor& x, const Tensor& y, double lr, int64_t step, uint64_t rng_offset);
  void broadcast_buffers_from_rank0(std::string_view what);
  bool syncs_batch_norm() const { return sync_batch_norm_ && comm_ != nullptr; }
  // Its all-reduce: reduced_grad_ (the global summed gradient) from this rank's gradient (P,) and
  // the global batch's sums from its own; over comm_ on a host copy, or over gradient_comm_ in
  // device memory.
  StepStats all_reduce_in_buckets(const Compiled& c, const std::map<std::string, Tensor>& feeds, RunOptions run,
                                  int64_t rows, int64_t step, std::vector<Tensor>& out);
  StepStats all_reduce_on_device(const Compiled& c, const std::vector<Tensor>& out, int64_t rows, int64_t step);

  nn::Model model_;
  optim::OptimizerConfig optimizer_;
  PlanOptions plan_options_;
  Precision precision_;
  Task task_;
  std::vector<Slot> slots_;            // trainable parameters, state_dict order
  std::vector<nn::ParamInfo> buffers_; // non-trainable (BatchNorm running stats)
  std::map<std::string, Tensor> buffer_values_;
  int64_t param_count_ = 0;  // the state's row length: parameters and their alignment gaps
  int64_t state_rows_ = 1;
  Tensor state_[2];  // (S, P) f32, ping-ponged
  Tensor decay_mask_;  // (P,) f32 on the home backend: each column's weight-decay multiplier
  int current_ = 0;
  bool replay_ = false;
  std::map<std::string, std::unique_ptr<Compiled>> cache_;
  std::shared_ptr<Communicator> comm_;  // nullptr: one process
  std::shared_ptr<Communicator> gradient_comm_;  // NCCL on the home GPU; nullptr: comm_ carries them
  Tensor device_reduce_;  // (P + 4,) f32 on the home GPU: weighted gradient, then the 4 sums
  std::chrono::milliseconds comm_timeout_{std::chrono::minutes(5)};
  size_t bucket_bytes_ = kDefaultGradientBucketBytes;
  std::unique_ptr<GradientBuckets> buckets_;  // made at the first data-parallel step
  Tensor reduced_grad_;  // (P,) f32 on the home backend: the update's input (on CPU, buckets_'s memory)
  std::vector<Tensor> bucket_views_;  // on CPU: each parameter's columns of buckets_'s memory, its shape
  bool sync_batch_norm_ = false;  // set_sync_batch_norm
  // --zero 1: this rank's columns [shard_begin_, shard_begin_ + shard_columns_) of the state, as
  // its own (S, n) ping-pong pair (shard_state_[shard_current_] is current); made from state_ at
  // the first sharded update after state_ was written whole (shard_ready_).
  bool zero_ = false;
  bool shard_ready_ = false;
  bool shard_slots_stale_ = false;  // state_'s rows 1.. lack the other ranks' columns
  int64_t shard_begin_ = 0, shard_columns_ = 0;
  Tensor shard_state_[2];
  Tensor shard_decay_;
  int shard_current_ = 0;
};

}  // namespace gpuml
