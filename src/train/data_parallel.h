// What data parallelism adds to a training run besides the gradient all-reduce (which lives in
// ModelRunner, train/model_runner.h): the check, at the start, that every rank was started with the
// same run, and the held-out evaluation's sums added over the ranks.
//
//   check_ranks_agree(comm, config_json, model_json, timeout);   // throws on rank r, naming the field
//   TaskSums all = sum_over_ranks(comm, runner.evaluate(my_rows_x, my_rows_y), timeout);
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>

#include "backend/communicator.h"
#include "train/task.h"

namespace gpuml {

// Rank 0's configuration (train/resume.h's config_to_json, to which the Trainer adds GPUML_COMM's
// request) and model JSON go to every rank, which compares them with its own. Fields that may differ per machine (device, data memory limit) are
// not compared. Every rank learns every rank's first difference, so all stop together, each
// throwing an Error that names them ("rank 1 has batch_size 32, rank 0 has 64").
void check_ranks_agree(Communicator& comm, const nlohmann::json& config, const nlohmann::json& model,
                       std::chrono::milliseconds timeout);

// Every rank's `mine` added up, in rank order, in float64 (an all-gather, not a float all-reduce):
// every rank gets the same figures, and they equal one process's over all the rows up to the order
// of the additions. Evaluation splits the held-out rows over the ranks and adds their sums so.
TaskSums sum_over_ranks(Communicator& comm, const TaskSums& mine, std::chrono::milliseconds timeout);

}  // namespace gpuml
