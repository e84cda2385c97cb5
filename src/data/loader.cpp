#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "data/batch_allocator.h"
#include "data/permutation.h"

namespace gpuml::data {

DataLoader::DataLoader(InMemoryDataset dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)),
      normalize_(options_.normalization, dataset_.sample_shape(), dataset_.features().dtype(), "DataLoader") {
  GPUML_CHECK(options_.batch_size > 0, "DataLoader: batch size must be positive, got {}", options_.batch_size);
  GPUML_CHECK(options_.prefetch_depth >= 0, "DataLoader: prefetch depth must be >= 0, got {}",
              options_.prefetch_depth);
  BatchPart{options_.part, options_.parts}.check(options_.batch_size, "DataLoader");
  if (!options_.memory) options_.memory = BatchMemory::create();
}

DataLoader::~DataLoader() { stop_producer(); }

int64_t DataLoader::batches_per_epoch() const {
  return BatchPart{options_.part, options_.parts}.batches(dataset_.size(), options_.batch_size, options_.drop_last);
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  if (options_.shuffle) return philox_permutation(dataset_.size(), options_.seed, static_cast<uint64_t>(epoch));
  std::vector<int64_t> order(static_cast<size_t>(dataset_.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

Batch DataLoader::make_batch(int64_t epoch, int64_t index) const {
  GPUML_CHECK(index >= 0 && index < batches_per_epoch(), "DataLoader: batch {} out of range ({} per epoch)", index,
              batches_per_epoch());
  return assemble(epoch_order(epoch), epoch, index);
}

Batch DataLoader::assemble(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const {
  const int64_t global_first = index * options_.batch_size;
  const int64_t global_rows = std::min(options_.batch_size, dataset_.size() - global_first);
  const BatchPart::Rows mine = BatchPart{options_.part, options_.parts}.rows_of(global_rows);
  const int64_t first = global_first + mine.first, rows = mine.count;
  Shape shape = dataset_.features().shape();
  shape[0] = rows;
  Shape label_shape = dataset_.labels().shape();
  label_shape[0] = rows;
  Batch batch{options_.memory->empty(shape, DType::f32), options_.memory->empty(label_shape, dataset_.labels().dtype()),
              epoch, index};
  const int64_t sample_elems = normalize_.sample_elems();
  const size_t sample_bytes = static_cast<size_t>(sample_elems) * dtype_size(dataset_.features().dtype());
  const auto* features = static_cast<const uint8_t*>(dataset_.features().raw_data());  // (N, sample_elems)
  const size_t label_bytes = static_cast<size_t>(numel(dataset_.label_shape())) * dtype_size(dataset_.labels().dtype());
  const auto* labels = static_cast<const uint8_t*>(dataset_.labels().raw_data());  // (N, label_bytes)
  float* x = batch.x.data<float>();                      // (rows, sample_elems)
  auto* y = static_cast<uint8_t*>(batch.y.raw_data());  // (rows, label_bytes)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t sample = order[static_cast<size_t>(first + r)];
    normalize_(features + static_cast<size_t>(sample) * sample_bytes, x + r * sample_elems);
    std::memcpy(y + static_cast<size_t>(r) * label_bytes, labels + static_cast<size_t>(sample) * label_bytes, label_bytes);
  }
  return batch;
}

void DataLoader::seek(LoaderPosition position) {
  GPUML_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch <= batches_per_epoch(),
              "DataLoader: cannot seek to epoch {} batch {} ({} batches per epoch)", position.epoch, position.batch,
              batches_per_epoch());
  stop_producer();
  position_ = position;
}

void DataLoader::start_producer() {
  if (order_epoch_ != position_.epoch) {
    order_ = epoch_order(position_.epoch);
    order_epoch_ = position_.epoch;
  }
  stop_ = false;
  producer_done_ = false;
  producer_error_ = nullptr;
  producer_ = std::thread([this, epoch = position_.epoch, first = position_.batch] { produce(epoch, first); });
}

void DataLoader::stop_producer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (producer_.joinable()) producer_.join();
  ready_.clear();
  producer_done_ = false;
  producer_error_ = nullptr;
}

void DataLoader::produce(int64_t epoch, int64_t first_batch) {
  const size_t depth = static_cast<size_t>(options_.prefetch_depth);
  for (int64_t b = first_batch, end = batches_per_epoch(); b < end; ++b) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || ready_.size() < depth; });
      if (stop_) return;
    }
    try {
      Batch batch = assemble(order_, epoch, b);
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      ready_.push_back(std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      producer_error_ = std::current_exception();
      producer_done_ = true;
      changed_.notify_all();
      return;
    }
    changed_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  producer_done_ = true;
  changed_.notify_all();
}

std::optional<Batch> DataLoader::next() {
  if (position_.batch >= batches_per_epoch()) return std::nullopt;
  if (options_.prefetch_depth == 0) {
    if (order_epoch_ != position_.epoch) {
      order_ = epoch_order(position_.epoch);
      order_epoch_ = position_.epoch;
    }
    Batch batch = assemble(order_, position_.epoch, position_.batch);
    ++position_.batch;
    return batch;
  }
  if (!producer_.joinable()) start_producer();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || producer_done_; });
  if (ready_.empty()) {
    std::exception_ptr error = producer_error_;
    lock.unlock();
    stop_producer();
    if (error) std::rethrow_exception(error);
    GPUML_FAIL(ErrorKind::Internal, "DataLoader: producer finished before batch {} of epoch {}", position_.batch,
               position_.epoch);
  }
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  // Wake the producer only once the queue is half empty. Woken on every batch, it preempted the
  // training thread right here on a 2-core machine (while the other OpenMP thread spun at its
  // barrier): that cost ~65 us a step, counted as data wait with batches ready. See BENCHMARKS.md.
  const bool wake = ready_.size() <= static_cast<size_t>(options_.prefetch_depth) / 2;
  lock.unlock();
  if (wake) changed_.notify_all();
  ++position_.batch;
  return batch;
}

}  // namespace gpuml::data
