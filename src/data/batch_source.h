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

#include "core/error.h"
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

// Data parallelism: `parts` processes each take part `part` of every global batch, so that together
// they see exactly the batches one process would: rows [rows * part / parts, rows * (part + 1) /
// parts) of a global batch of `rows` rows. Every loader (DataLoader, ShardLoader, the text and
// token window loaders) splits by this one rule.
struct BatchPart {
  int part = 0, parts = 1;
  struct Rows {
    int64_t first = 0, count = 0;
  };
  Rows rows_of(int64_t global_rows) const {
    const int64_t first = global_rows * part / parts;
    return {first, global_rows * (part + 1) / parts - first};
  }
  // Batches per epoch of `records` in global batches of `batch` rows: with parts > 1 a last batch
  // of fewer rows than parts is dropped (some process would get none).
  int64_t batches(int64_t records, int64_t batch, bool drop_last = false) const {
    if (drop_last || records % batch < parts) return records / batch;
    return (records + batch - 1) / batch;
  }
  // Refuses a part that is none, or a global batch too small to give every part a row.
  void check(int64_t global_batch, const char* loader) const {
    GPUML_CHECK(parts >= 1 && part >= 0 && part < parts, "{}: part {} of {} is not a part", loader, part, parts);
    GPUML_CHECK(global_batch >= parts, "{}: a batch of {} rows cannot be split in {} parts", loader, global_batch,
                parts);
  }
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
