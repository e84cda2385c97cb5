// What `gpuml train --resume` reads before anything runs: the checkpoint, the training
// configuration and the model description in its metadata, all validated.
//
//   ResumePoint r = read_resume_point("runs/cnn-20261203", requested);   // or a .safetensors file
//   TrainConfig cfg = r.config;              // the saved run's settings, epochs etc. from `requested`
//   runner.load(r.checkpoint.model, r.checkpoint.optimizer);
//
// The metadata is the user's file like any other (a checkpoint may come from anywhere): a wrong
// type, a missing field or deep nesting is an Error naming the file, never a crash.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "nn/model.h"
#include "train/checkpoint.h"
#include "train/train_config.h"

namespace gpuml {

struct ResumePoint {
  std::string path;       // the checkpoint file (a run directory's last.safetensors)
  Checkpoint checkpoint;
  // The saved configuration. From the new command come only: epochs (when epochs_given), out,
  // quiet, max_steps, threads, cuda_graphs, bucket_mb, zero, save_on_interrupt, and when given checkpoint_every,
  // eval_every, eval_iters and device. `gpuml train --resume` refuses the flags of the other fields (exit 2).
  TrainConfig config;
  int64_t saved_epochs = 0;  // the epochs the run was configured with
  nn::Model model;
};

ResumePoint read_resume_point(const std::string& resume, const TrainConfig& requested);

// A run saved by one number of processes and resumed by another (data parallelism): the global
// batch changes with them, so the data order does too. The position within a partly done epoch
// is carried over by rows seen (at most one global batch of it is seen again), the checkpoint's
// progress takes the new world size, and the returned warning says so; "" when it is unchanged
// (the resumed run is then exact).
std::string adapt_to_world_size(ResumePoint& resumed, int world_size);

// The configuration as saved in a checkpoint, and back (the `requested` fields that a resumed
// run takes from the new command are kept).
nlohmann::json config_to_json(const TrainConfig& config);
TrainConfig config_from_json(const nlohmann::json& saved, const TrainConfig& requested,
                             const std::string& where);

}  // namespace gpuml
