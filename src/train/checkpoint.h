// Training checkpoints: one safetensors file holding the model's tensors under their PyTorch
// state_dict names, the optimizer state under "optimizer.<slot>.<param name>" (slot as in
// torch.optim: momentum_buffer, exp_avg, exp_avg_sq), and in __metadata__ everything --resume
// needs: epoch, step, loader position, seed, best metric, model JSON and training config.
// Written atomically: a crash or kill during a save leaves the previous checkpoint loadable.
//
//   Checkpoint c;
//   c.model = {{"0.weight", w}, {"0.bias", b}};
//   c.progress.epoch = 3;
//   save_checkpoint("runs/x/last.safetensors", c);
//   Checkpoint back = load_checkpoint("runs/x/last.safetensors");
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "io/safetensors.h"

namespace gpuml {

struct TrainingProgress {
  int64_t epoch = 0;          // epochs completed
  int64_t step = 0;           // optimizer steps taken
  int64_t loader_epoch = 0;   // where the data loader resumes
  int64_t loader_batch = 0;
  uint64_t seed = 0;
  double best_metric = 0.0;   // best held-out metric so far (accuracy, RMSE, perplexity: train/task.h)
  int64_t best_epoch = 0;
  int64_t epochs_without_improvement = 0;
  // Sums over the batches already trained in a partly done epoch (loader_batch > 0), so that a
  // run resumed mid-epoch reports the same epoch metrics as one that never stopped.
  // (train/task.h TaskSums: loss_sum, weight, score, rows.)
  double epoch_loss_sum = 0.0, epoch_weight = 0.0, epoch_score = 0.0;
  int64_t epoch_seen = 0;
  double epoch_seconds = 0.0, epoch_step_seconds = 0.0;
  // Processes that trained the run (data parallelism): loader_batch counts global batches of
  // world_size * batch_size rows. Checkpoints written before it was recorded: 1.
  int64_t world_size = 1;
};

struct Checkpoint {
  NamedTensors model;        // PyTorch names, host tensors
  NamedTensors optimizer;    // "optimizer.<slot>.<param>"
  TrainingProgress progress;
  std::string model_json;    // the model description (nn::Model::to_json)
  std::string config_json;   // the training configuration
};

inline constexpr const char* kOptimizerPrefix = "optimizer.";

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);
// Validates the file (io/safetensors) and the gpuml metadata; errors name the file and the field.
Checkpoint load_checkpoint(const std::filesystem::path& path);

}  // namespace gpuml
