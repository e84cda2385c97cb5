#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "data/permutation.h"

namespace gpuml::data {

DataLoader::DataLoader(InMemoryDataset dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  GPUML_CHECK(options_.batch_size > 0, "DataLoader: batch size must be positive, got {}", options_.batch_size);
  GPUML_CHECK(options_.prefetch_depth >= 0, "DataLoader: prefetch depth must be >= 0, got {}",
              options_.prefetch_depth);
  const Normalization& norm = options_.normalization;
  GPUML_CHECK(norm.mean.size() == norm.std.size(), "DataLoader: {} normalisation means but {} stds",
              norm.mean.size(), norm.std.size());
  Shape sample = dataset_.sample_shape();
  int64_t sample_elems = numel(sample);
  size_t channels = std::max<size_t>(norm.mean.size(), 1);
  if (channels > 1) {
    GPUML_CHECK_SHAPE(!sample.empty() && sample[0] == static_cast<int64_t>(channels),
                      "DataLoader: {} per-channel means for samples of shape {} (channels are sample axis 0)",
                      channels, shape_str(sample));
  }
  channel_size_ = channels > 1 ? sample_elems / static_cast<int64_t>(channels) : std::max<int64_t>(sample_elems, 1);
  for (size_t c = 0; c < channels; ++c) {
    double mean = norm.mean.empty() ? 0.0 : norm.mean[c];
    double std = norm.std.empty() ? 1.0 : norm.std[c];
    GPUML_CHECK(std > 0.0 && std::isfinite(std), "DataLoader: normalisation std[{}] = {} must be positive", c, std);
    channel_scale_.push_back(norm.scale / std);
    channel_shift_.push_back((norm.shift - mean) / std);
  }
}

DataLoader::~DataLoader() { stop_producer(); }

int64_t DataLoader::batches_per_epoch() const {
  int64_t n = dataset_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
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
  int64_t first = index * options_.batch_size;
  int64_t rows = std::min(options_.batch_size, dataset_.size() - first);
  Shape shape = dataset_.features().shape();
  shape[0] = rows;
  Batch batch{Tensor::empty(shape, DType::f32), Tensor::empty({rows}, DType::i64), epoch, index};
  int64_t sample_elems = numel(dataset_.sample_shape());
  float* x = batch.x.data<float>();            // (rows, sample_elems)
  int64_t* y = batch.y.data<int64_t>();        // (rows,)
  const int64_t* labels = dataset_.labels().data<int64_t>();
  dispatch_dtype(dataset_.features().dtype(), [&]<typename T>(T) {
    const T* features = static_cast<const T*>(dataset_.features().raw_data());  // (N, sample_elems)
    for (int64_t r = 0; r < rows; ++r) {
      int64_t sample = order[static_cast<size_t>(first + r)];
      const T* src = features + sample * sample_elems;
      float* dst = x + r * sample_elems;
      for (int64_t e = 0; e < sample_elems; ++e) {
        size_t c = static_cast<size_t>(e / channel_size_);
        dst[e] = static_cast<float>(to_double(src[e]) * channel_scale_[c] + channel_shift_[c]);
      }
      y[r] = labels[sample];
    }
  });
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
  lock.unlock();
  changed_.notify_all();
  ++position_.batch;
  return batch;
}

}  // namespace gpuml::data
