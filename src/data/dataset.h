// An in-memory labelled dataset: features (N, ...) of any numeric dtype and labels (N, ...): i64
// from integers (class ids, token ids), f32 from floating values (regression targets; a Task,
// train/task.h, checks and converts them for what is trained); plus the seeded train/validation
// split behind --val-split.
//
//   data::IdxDataset raw = data::load_idx_dataset(dir);
//   data::InMemoryDataset train(raw.train_x, raw.train_y);        // u8 labels become i64
//   train = train.reshape_samples({1, 28, 28});                   // (N, 1, 28, 28)
//   auto [fit, val] = data::split_train_val(train, 0.1, seed);    // 54000 / 6000 rows
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace gpuml::data {

class InMemoryDataset {
 public:
  // features (N, ...) host, any dtype but boolean; labels (N, ...) host, integral (kept as i64)
  // or floating (kept as f32). Non-contiguous inputs are copied.
  InMemoryDataset(Tensor features, Tensor labels);

  int64_t size() const { return features_.dim(0); }
  Shape sample_shape() const { return Shape(features_.shape().begin() + 1, features_.shape().end()); }
  const Tensor& features() const { return features_; }  // (N, ...) contiguous
  const Tensor& labels() const { return labels_; }      // (N, ...) i64 or f32, contiguous
  Shape label_shape() const { return Shape(labels_.shape().begin() + 1, labels_.shape().end()); }

  // The same rows viewed with another per-sample shape of the same size (one dim may be -1).
  InMemoryDataset reshape_samples(const Shape& sample_shape) const;
  // A copy of the rows at `indices`, in that order.
  InMemoryDataset subset(const std::vector<int64_t>& indices) const;

 private:
  Tensor features_;
  Tensor labels_;
};

struct TrainValSplit {
  InMemoryDataset train;
  InMemoryDataset val;
};

// round(val_fraction * N) rows chosen by a Philox permutation of `seed` go to val, the rest to
// train; both keep the original row order. val_fraction in (0, 1) and both parts non-empty.
TrainValSplit split_train_val(const InMemoryDataset& data, double val_fraction, uint64_t seed);

}  // namespace gpuml::data
