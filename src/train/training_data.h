// A training run's data, as the Trainer consumes it (TrainingData, train/shard_source.h): from the
// file or directory TrainConfig::data names, or from arrays given in memory; with the optional
// --val-split held out of the training rows. Batches are built in the run's own BatchMemory.
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "data/batch_allocator.h"
#include "data/dataset.h"
#include "train/shard_source.h"
#include "train/train_config.h"

namespace gpuml {

namespace nn {
class Model;
}

// Which part of every batch this process trains on (data parallelism): rank `rank` of `ranks`
// processes, each taking config.batch_size rows of every global batch of ranks * batch_size.
struct BatchPart {
  int rank = 0, ranks = 1;
};

// `train` (and `eval`) given: those arrays instead of config.data. The samples are checked to fit
// `model`, and the task (config.task, train/task.h) is resolved against it: the labels become its
// targets.
TrainingData load_run_data(const TrainConfig& config, const nn::Model& model, std::optional<data::InMemoryDataset> train,
                           std::optional<data::InMemoryDataset> eval, std::shared_ptr<data::BatchMemory> memory,
                           BatchPart part = {});

// The whole dataset normalised once: (N, ...) f32 and its targets, for evaluation.
std::pair<Tensor, Tensor> normalised(const data::InMemoryDataset& data, const data::Normalization& norm);

}  // namespace gpuml
