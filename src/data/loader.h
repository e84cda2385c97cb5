// Batches of an in-memory dataset: seeded per-epoch shuffling, normalisation to f32, and a
// background thread that keeps up to `prefetch_depth` batches ready so that reading never
// stalls compute. Batch b of epoch e is a pure function of (dataset, options, e, b): the same
// seed gives bit-identical batches whatever the prefetch depth, and a resumed loader (seek)
// gives exactly the batches the interrupted one would have.
//
//   data::DataLoaderOptions opt;
//   opt.batch_size = 128;
//   opt.seed = 42;
//   opt.normalization = {.scale = 1.0 / 255, .mean = {0.2860}, .std = {0.3530}};
//   data::DataLoader loader(train, opt);
//   for (int64_t epoch = 0; epoch < 10; ++epoch) {
//     loader.start_epoch(epoch);
//     while (std::optional<data::Batch> b = loader.next()) step(b->x, b->y);  // (B,1,28,28) f32, (B,) i64
//   }
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "data/batch_allocator.h"
#include "data/batch_source.h"
#include "data/dataset.h"
#include "data/normalize.h"

namespace gpuml::data {

struct DataLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;   // drop the last partial batch of an epoch
  int prefetch_depth = 8;   // 0: build batches on the caller's thread; refilled from half empty
  Normalization normalization;
  // Where batches are built (data/batch_allocator.h); nullptr: a pool of plain host memory of its own.
  std::shared_ptr<BatchMemory> memory;
  // Data parallelism: this process takes its part of every batch of batch_size rows (the global
  // batch; BatchPart, data/batch_source.h): part `part` of `parts`.
  int part = 0, parts = 1;
};

class DataLoader : public BatchSource {
 public:
  DataLoader(InMemoryDataset dataset, DataLoaderOptions options);
  ~DataLoader() override;  // stops and joins the prefetch thread, whatever it was doing
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const override;
  const InMemoryDataset& dataset() const { return dataset_; }
  const DataLoaderOptions& options() const { return options_; }

  // Moves to batch `position.batch` of `position.epoch` (0 <= batch <= batches_per_epoch()),
  // dropping prefetched batches. Resume is seek(saved position).
  void seek(LoaderPosition position) override;
  // The next batch of the current epoch, or nullopt once the epoch is done. Rethrows an error
  // raised while preparing a batch.
  std::optional<Batch> next() override;
  LoaderPosition position() const override { return position_; }

  // Builds batch `index` of `epoch` on the calling thread: what next() returns for it (this
  // process's part of it).
  Batch make_batch(int64_t epoch, int64_t index) const;

 private:
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  Batch assemble(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;
  void start_producer();
  void stop_producer();
  void produce(int64_t epoch, int64_t first_batch);

  InMemoryDataset dataset_;
  DataLoaderOptions options_;
  SampleNormalizer normalize_;
  LoaderPosition position_;
  std::vector<int64_t> order_;         // sample order of position_.epoch
  int64_t order_epoch_ = -1;

  // Prefetch state, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  bool stop_ = false;
  bool producer_done_ = false;
  std::exception_ptr producer_error_;
  std::thread producer_;
};

}  // namespace gpuml::data
