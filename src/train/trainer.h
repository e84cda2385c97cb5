// The training loop behind `gpuml train`: data, model, optimizer and schedule from one
// TrainConfig; per epoch a progress bar, evaluation (test set or --val-split), metrics.csv, a
// TensorBoard event file, an SVG plot, and checkpoints (last, best, and model.safetensors that
// PyTorch loads); early stopping; a NaN/Inf loss stops training naming the step; --resume
// continues from last.safetensors exactly where the run stopped.
//
//   TrainConfig cfg;
//   cfg.data = "/usr/share/datasets/fashion-mnist";
//   cfg.model = "cnn";
//   cfg.epochs = 3;
//   TrainResult r = train(cfg);   // r.test_accuracy, r.run_dir
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/precision.h"

namespace gpuml {

struct TrainConfig {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string model = "cnn";  // a preset (mlp, cnn) or a JSON file describing layers
  int64_t epochs = 5;
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
  double val_split = 0.0;       // > 0: hold out this fraction of train for validation
  int64_t patience = 0;         // > 0: stop after this many epochs without a better val accuracy
  std::string csv_label, csv_fill;
  // Sharded datasets (--data DIR with a manifest.json) stream within this many bytes of host
  // memory (0: a quarter of the available memory), through a shuffle buffer of this many
  // records (0: as many as the limit allows).
  uint64_t data_memory_limit = 0;
  int64_t shuffle_buffer = 0;
  // Mid-epoch checkpoints: every this many steps last.safetensors also records the loader's
  // position, so --resume continues inside the epoch (0: at epoch ends only).
  int64_t checkpoint_every = 0;
  // Stop after this many optimizer steps in all (0: no limit), writing a checkpoint where it
  // stopped; --resume continues from there.
  int64_t max_steps = 0;
  // SIGINT/SIGTERM (Ctrl-C, a scheduler's preemption) finish the current step, write a
  // checkpoint at the loader's position and return; a second signal kills as usual.
  bool save_on_interrupt = true;
  bool quiet = false;           // no progress bar, no summary
  Precision precision = Precision::fp32;  // --precision (train/precision.h)
  // --deterministic: kernels take their deterministic forms (PlanOptions::deterministic), so two
  // runs with the same seed, device and thread count end with bitwise-identical weights.
  bool deterministic = false;
  // Capture the training step as a CUDA graph once and replay it (--no-cuda-graphs: eager
  // launches). Only a GPU backend captures; on CPU this changes nothing.
  bool cuda_graphs = true;
};

struct TrainResult {
  std::string run_dir;
  int64_t epochs_run = 0;
  double train_loss = 0, train_accuracy = 0;
  double eval_loss = 0, eval_accuracy = 0;  // on the test set, or the validation split
  double best_accuracy = 0;
  double seconds_training = 0;  // wall time of the training loops (no evaluation or checkpoint I/O)
  bool stopped_early = false;
  bool stopped_at_max_steps = false;
  int interrupted_by = 0;       // the signal that stopped training (SIGINT, SIGTERM), or 0
  // On a backend that captures (CUDA): how many steps replayed a CUDA graph, or why none did.
  std::string replay_summary;
};

TrainResult train(const TrainConfig& config);

// The backends a --device string means, in order of preference; errors say what is available.
PlanOptions plan_options_for_device(const std::string& device);

}  // namespace gpuml
