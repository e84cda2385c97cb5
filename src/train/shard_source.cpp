#include "train/shard_source.h"

#include "core/error.h"
#include "data/shard_loader.h"

namespace gpuml {

TrainingData open_shard_training_data(const ShardSourceOptions& o) {
  data::ShardLoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.seed = o.seed;
  lo.memory_limit = o.memory_limit;
  lo.shuffle_buffer = o.shuffle_buffer;
  TrainingData d;
  // Integer images are scaled to [0, 1], as for in-memory data.
  if (data::read_shard_manifest(o.dir).field("x").dtype == DType::u8) d.normalization.scale = 1.0 / 255.0;
  lo.normalization = d.normalization;
  auto loader = std::make_unique<data::ShardLoader>(o.dir, lo);
  const data::ShardManifest& m = loader->dataset().manifest();
  d.sample_shape = loader->sample_shape();
  d.num_classes = m.num_classes;
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
