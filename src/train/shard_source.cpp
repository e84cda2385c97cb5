#include "train/shard_source.h"

#include <fmt/ranges.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "data/shard_loader.h"

namespace gpuml {

data::InMemoryDataset load_shard_test_split(const std::string& dir) {
  data::ShardDataset ds(dir);
  if (!ds.manifest().has_split("test")) {
    std::vector<std::string> names;
    for (const data::ShardSplit& split : ds.manifest().splits) names.push_back(split.name);
    GPUML_FAIL(ErrorKind::Invalid,
               "--data {}: this sharded dataset has no test split to evaluate on (it has: {}); pack data that has a "
               "test part, or evaluate on in-memory data",
               dir, fmt::join(names, ", "));
  }
  return ds.load_split("test");
}

TrainingData open_shard_training_data(const ShardSourceOptions& o) {
  data::ShardLoaderOptions lo;
  lo.batch_size = o.batch_size * o.part.parts;  // the global batch; the loader takes this process's rows
  lo.part = o.part;
  lo.seed = o.seed;
  lo.memory_limit = o.memory_limit;
  lo.shuffle_buffer = o.shuffle_buffer;
  lo.memory = o.memory;
  TrainingData d;
  // Shards hold class ids (classification); their features are scaled by the one rule (task.h).
  d.task = Task(TaskKind::classification);
  lo.normalization = d.task.input_normalization(data::read_shard_manifest(o.dir).field("x").dtype);
  auto loader = std::make_unique<data::ShardLoader>(o.dir, lo);
  const data::ShardManifest& m = loader->dataset().manifest();
  d.sample_shape = loader->sample_shape();
  d.num_classes = m.num_classes;
  d.class_names = m.class_names;
  GPUML_CHECK(d.num_classes > 0, "--data {}: the manifest has no num_classes (no label field y was packed)", o.dir);
  const data::ShardMemoryPlan& plan = loader->memory_plan();
  d.description = fmt::format(
      "shards {}: {} train records in {} shards{}; streaming within {} (shuffle buffer {} records = {}, read-ahead {}, "
      "batches {})",
      o.dir, loader->size(), loader->split().shards.size(),
      m.has_split("test") ? fmt::format(", {} test", m.split("test").records) : "", data::format_bytes(plan.limit),
      plan.shuffle_records, data::format_bytes(plan.shuffle_bytes), data::format_bytes(plan.shard_bytes),
      data::format_bytes(plan.batch_bytes));
  if (m.has_split("test")) d.eval = loader->dataset().load_split("test");
  d.train = std::move(loader);
  return d;
}

}  // namespace gpuml
