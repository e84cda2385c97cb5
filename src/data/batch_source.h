// What the trainer pulls batches from: the in-memory DataLoader (data/loader.h) and the
// streaming ShardLoader (data/shard_loader.h) both implement it. Batch b of epoch e is a pure
// function of the dataset, the options and (e, b), so seek(saved position) resumes exactly.
//
//   std::unique_ptr<data::BatchSource> source = ...;
//   source->seek({epoch, 0});
//   while (std::optional<data::Batch> b = source->next()) step(b->x, b->y);  // (B, ...) f32, (B,) i64
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace gpuml::data {

struct Batch {
  Tensor x;  // (B, ...) f32 contiguous
  Tensor y;  // (B, ...) the targets: (B,) i64 class ids from shards; any shape and i64/f32 from a DataLoader
  int64_t epoch = 0;
  int64_t index = 0;  // batch index within the epoch
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // the batch next() returns next
  bool operator==(const LoaderPosition&) const = default;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t batches_per_epoch() const = 0;
  // Moves to batch `position.batch` of `position.epoch` (0 <= batch <= batches_per_epoch()).
  virtual void seek(LoaderPosition position) = 0;
  void start_epoch(int64_t epoch) { seek({epoch, 0}); }
  // The next batch of the current epoch, or nullopt once the epoch is done; rethrows an error
  // raised while preparing it (a damaged shard, ...).
  virtual std::optional<Batch> next() = 0;
  virtual LoaderPosition position() const = 0;
};

}  // namespace gpuml::data
