// Everything that defines a training run: what `gpuml train`'s flags set, what config.json and
// every checkpoint save, and what --resume restores (train/resume.h).
#pragma once

#include <cstdint>
#include <string>

#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/precision.h"

namespace gpuml {

inline constexpr double kDefaultValSplit = 0.1;

struct TrainConfig {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string model = "cnn";  // a preset (mlp, cnn) or a JSON file describing layers
  int64_t epochs = 5;
  // With --resume: false takes the epochs the run was configured with, true `epochs` (the
  // command line sets it when --epochs is given; the other fields --resume keeps are in
  // train/resume.h).
  bool epochs_given = true;
  int64_t batch_size = 128;
  optim::OptimizerConfig optimizer;  // lr lives here
  optim::ScheduleConfig schedule;
  uint64_t seed = 0;
  int threads = 0;              // 0: OpenMP's default (all cores)
  std::string device = "auto";  // auto | cpu | ref | cuda[:N]
  std::string out;              // run directory; empty: runs/<model>-<time> (train/run_dir.h)
  bool overwrite = false;       // a non-empty `out` holding an earlier run: clear it (else refused)
  std::string resume;           // a run directory or a checkpoint file
  std::string init_from;        // start from these weights (.safetensors or .npz, PyTorch names)
  // The fraction of train held out for validation. Negative (the default): 10% when the data
  // has no test split (kDefaultValSplit), none when it has one (the test split evaluates). 0:
  // train on all of it; without a test split there is then no evaluation, no best checkpoint and
  // no --patience. The Trainer saves the fraction it used.
  double val_split = -1;
  int64_t patience = 0;         // > 0: stop after this many epochs without a better held-out accuracy
  std::string csv_label, csv_fill;
  // What the model learns (train/task.h): auto | classification | regression | language-model.
  // The Trainer saves the task it resolved; --resume keeps it. ignore_index: the language
  // model's target that counts for nothing (padding), as torch's cross_entropy.
  std::string task = "auto";
  int64_t ignore_index = -100;
  // Sharded datasets (--data DIR with a manifest.json) stream within this many bytes of host
  // memory (0: a quarter of the available memory), through a shuffle buffer of this many
  // records (0: as many as the limit allows).
  uint64_t data_memory_limit = 0;
  int64_t shuffle_buffer = 0;
  // Mid-epoch checkpoints: every this many steps last.safetensors also records the loader's
  // position, so --resume continues inside the epoch (0: at epoch ends only).
  int64_t checkpoint_every = 0;
  // Evaluate on the held-out data every this many steps as well (0: at epoch ends only), on its
  // first eval_iters batches of batch_size rows (0: all of it): for step-based runs, where an
  // epoch is long (text). Reported in the log, steps.csv and TensorBoard.
  int64_t eval_every = 0, eval_iters = 0;
  // The run's length in optimizer steps (0: epochs x batches per epoch), for step-based runs: the
  // schedule anneals over it and training ends after it, the epoch in progress ending there with
  // its evaluation (epochs becomes ceil(steps / batches per epoch)). Unlike max_steps, which only
  // interrupts (and so leaves the schedule as it was, for an exact --resume).
  int64_t steps = 0;
  // Stop after this many optimizer steps in all (0: no limit), writing a checkpoint where it
  // stopped; --resume continues from there.
  int64_t max_steps = 0;
  // SIGINT/SIGTERM (Ctrl-C, a scheduler's preemption) finish the current step, write a
  // checkpoint at the loader's position and return; a second signal kills as usual.
  bool save_on_interrupt = true;
  bool quiet = false;           // the command line installs no progress bar or summary (train/callbacks.h)
  Precision precision = Precision::fp32;  // --precision (train/precision.h)
  // --deterministic: kernels take their deterministic forms (PlanOptions::deterministic), so two
  // runs with the same seed, device and thread count end with bitwise-identical weights.
  bool deterministic = false;
  // Several processes: BatchNorm normalises with statistics over every rank's batch (all-reduced
  // in the step), so N ranks x batch B train as one process x batch N*B; off, each rank uses its
  // own batch's and takes rank 0's running statistics after every step (PyTorch DDP's default).
  // One process: no effect.
  bool sync_batchnorm = false;
  // Capture the training step as a CUDA graph once and replay it (--no-cuda-graphs: eager
  // launches). Only a GPU backend captures; on CPU this changes nothing.
  bool cuda_graphs = true;
  // Data parallelism: gradients are all-reduced in buckets of about this many MiB, each started
  // as soon as backward has produced it (train/gradient_buckets.h). Saved in config.json; every
  // rank must use the same; --resume takes the new command's (it changes no result).
  double bucket_mb = 1.0;
  // Data parallelism, --zero 1: each rank runs the optimizer update on its 1/N of the columns and
  // the ranks all-gather the new parameters (ModelRunner::set_zero). The same numbers either way
  // (to rounding with more than 2 ranks: the reduce-scatter adds in another order);
  // saved in config.json, every rank must use the same, --resume takes the new command's.
  int zero = 0;
};

}  // namespace gpuml
