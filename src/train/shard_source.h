// Training data as the trainer consumes it: a batch source for the training split and,
// optionally, an in-memory evaluation set. For a sharded dataset (a directory with
// manifest.json, see docs/SHARDS.md) the training split streams through data::ShardLoader
// within --data-memory-limit, and the "test" split (if packed) is loaded into memory for
// evaluation; in-memory datasets keep using data::DataLoader (trainer.cpp builds those).
//
//   ShardSourceOptions o;  o.dir = "fmnist-shards";  o.batch_size = 128;  o.memory_limit = 256 << 20;
//   TrainingData d = open_shard_training_data(o);   // d.train->next() ... ; d.eval: the test split
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/batch_source.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "train/task.h"

namespace gpuml {

struct TrainingData {
  std::unique_ptr<data::BatchSource> train;
  std::optional<data::InMemoryDataset> eval;
  std::string eval_name = "test";  // "test", "val", or empty when there is no evaluation set
  double val_split = 0;            // the fraction of train held out as `eval` (0: none)
  std::string split_note;          // for the run's header: how the evaluation rows were chosen
  Shape sample_shape;
  int64_t num_classes = 0;
  std::string description;
  std::vector<std::string> class_names;  // class id -> name, when the data names its classes
  std::string tokenizer_json;  // token datasets: the tokenizer (tokenizers' JSON), kept in the run
  Task task;               // what the model learns from these targets (train/task.h)
  std::string task_note;   // for the run's header: "classification (auto: integer labels)"
};

struct ShardSourceOptions {
  std::string dir;
  int64_t batch_size = 128;  // this process's rows of every batch (the global batch: * part.parts)
  data::BatchPart part;      // data parallelism: which part of every global batch this process takes
  uint64_t seed = 0;
  uint64_t memory_limit = 0;   // 0: data::default_data_memory_limit()
  int64_t shuffle_buffer = 0;  // records; 0: as many as the limit allows
  std::shared_ptr<data::BatchMemory> memory;  // where batches are built (nullptr: plain memory)
};

TrainingData open_shard_training_data(const ShardSourceOptions& options);

// The "test" split of the sharded dataset in `dir`, in memory, for `gpuml eval`; refused with a
// clear message when the dataset has none (the train split may not fit in memory).
data::InMemoryDataset load_shard_test_split(const std::string& dir);

}  // namespace gpuml
