// Streams batches from a sharded dataset (data/shard_format.h) within a fixed host-memory
// budget, for datasets larger than RAM. Per epoch the shard order is a Philox permutation of
// (seed, epoch); records pass through a shuffle buffer (data/shard_shuffle.h); a reader thread
// reads shards ahead (checking each one's CRC-32C) and an assembler thread shuffles, decodes and
// normalises records into f32 batches, so the training thread only waits when the disk cannot
// keep up. Batch b of epoch e is a pure function of (dataset, options, e, b): seek() to a saved
// position resumes with exactly the remaining batches, replaying the shuffle on record ids and
// re-reading only the shards whose records the buffer held at that point.
//
//   data::ShardLoaderOptions opt;
//   opt.batch_size = 128;
//   opt.seed = 42;
//   opt.memory_limit = 512 << 20;               // bytes: shuffle buffer + read-ahead + batches
//   opt.normalization.scale = 1.0 / 255;
//   data::ShardLoader loader("packed", opt);     // loader.memory_plan() says how it was spent
//   loader.start_epoch(0);
//   while (std::optional<data::Batch> b = loader.next()) step(b->x, b->y);   // (B, 1, 28, 28) f32, (B,) i64
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "data/batch_source.h"
#include "data/huge_buffer.h"
#include "data/loader.h"
#include "data/shard_reader.h"

namespace gpuml::data {

// How shards are read. automatic: direct when the split is larger than the memory limit (it
// would not stay in the page cache, and caching it would spend more host memory than the limit
// allows), through the page cache otherwise (later epochs then come from RAM).
enum class ShardIo { automatic, direct, buffered };

struct ShardLoaderOptions {
  std::string split = "train";
  int64_t batch_size = 32;      // rows of the global batch, of which this process takes `part`
  // Data parallelism (data/batch_source.h): every process streams the same global record order
  // (shard order, shuffle buffer) and decodes only its rows of each global batch, so N processes
  // together see exactly the batches of one and each record lands in exactly one process's batch.
  // The price: every process reads every shard (N times the I/O of one process, not once).
  BatchPart part = {};
  bool shuffle = true;          // shard order and shuffle buffer; false: records in stored order
  uint64_t seed = 0;
  uint64_t memory_limit = 0;    // bytes of host memory for data; 0: default_data_memory_limit()
  int64_t shuffle_buffer = 0;   // records; 0: all the limit leaves after read-ahead and batches
  int read_ahead = 2;           // shards read ahead of the one being shuffled in
  int prefetch_depth = 8;       // batches kept ready
  ShardIo io = ShardIo::automatic;
  Normalization normalization;  // as DataLoader's: y = ((x * scale + shift) - mean[c]) / std[c]
  std::shared_ptr<BatchMemory> memory;  // where batches are built; nullptr: plain host memory of its own
};

// How the memory limit is spent; every term is an upper bound on bytes the loader allocates.
struct ShardMemoryPlan {
  uint64_t limit = 0;
  int64_t shuffle_records = 0;  // shuffle buffer capacity in records
  uint64_t shuffle_bytes = 0;   // its slots plus their ids
  int64_t shard_buffers = 0;    // read_ahead + 1
  uint64_t shard_bytes = 0;     // shard_buffers * the largest shard
  int prefetch_depth = 0;       // batches kept ready: options' depth, lower (>= 2) under a tight limit
  int64_t batch_buffers = 0;    // prefetch_depth + 2 (one being built, one held by the caller)
  uint64_t batch_bytes = 0;
  bool direct_io = false;       // shards read with O_DIRECT (ShardIo)
  uint64_t total() const { return shuffle_bytes + shard_bytes + batch_bytes; }
};

// 1/4 of MemAvailable (/proc/meminfo), at least 64 MiB and at most 16 GiB.
uint64_t default_data_memory_limit();

class ShardLoader : public BatchSource {
 public:
  ShardLoader(const std::filesystem::path& dir, ShardLoaderOptions options);
  ~ShardLoader() override;
  ShardLoader(const ShardLoader&) = delete;
  ShardLoader& operator=(const ShardLoader&) = delete;

  int64_t batches_per_epoch() const override;
  void seek(LoaderPosition position) override;
  std::optional<Batch> next() override;
  LoaderPosition position() const override { return position_; }

  const ShardDataset& dataset() const { return dataset_; }
  const ShardSplit& split() const { return *split_; }
  int64_t size() const { return split_->records; }
  Shape sample_shape() const;
  const ShardMemoryPlan& memory_plan() const { return plan_; }

  struct Pipeline;  // the background threads of one epoch (shard_pipeline.cpp)

 private:
  void stop();

  ShardDataset dataset_;
  ShardLoaderOptions options_;
  const ShardSplit* split_ = nullptr;
  ShardMemoryPlan plan_;
  LoaderPosition position_;
  std::unique_ptr<Pipeline> pipeline_;
  HugeBuffer shuffle_storage_;        // the shuffle buffer's slots, reused across epochs
};

}  // namespace gpuml::data
