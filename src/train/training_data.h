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

// Which part of every batch this process trains on (data parallelism, data/batch_source.h): rank
// `part` of `parts` processes, each taking config.batch_size rows of every global batch of
// parts * batch_size, from in-memory data, a sharded dataset, text or a token dataset alike.
using BatchPart = data::BatchPart;

// `train` (and `eval`) given: those arrays instead of config.data. The samples are checked to fit
// `model`, and the task (config.task, train/task.h) is resolved against it: the labels become its
// targets.
TrainingData load_run_data(const TrainConfig& config, const nn::Model& model, std::optional<data::InMemoryDataset> train,
                           std::optional<data::InMemoryDataset> eval, std::shared_ptr<data::BatchMemory> memory,
                           BatchPart part = {});

// The whole dataset as the model takes it: (N, ...) f32 features scaled by the task's one input
// rule for their dtype (Task::input_normalization), and its targets; for evaluation.
std::pair<Tensor, Tensor> normalised(const data::InMemoryDataset& data, const Task& task);
// Features (N, ...) of any numeric dtype as the model takes them: f32, scaled by the same rule.
// What every predict path (the Trainer, the C++ API's Predictor, `gpuml predict`) feeds the model.
Tensor model_inputs(const Tensor& features, const Task& task);

}  // namespace gpuml
