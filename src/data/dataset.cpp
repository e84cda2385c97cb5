#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/permutation.h"
#include "data/tensor_copy.h"

namespace gpuml::data {
namespace {

Tensor labels_as_i64(const Tensor& labels) {
  GPUML_CHECK_KIND(ErrorKind::DType, is_integral(labels.dtype()),
                   "dataset: labels must be integer class ids, got {}", labels.dtype());
  if (labels.dtype() == DType::i64) return contiguous_copy(labels);
  Tensor out = Tensor::empty(labels.shape(), DType::i64);
  int64_t* dst = out.data<int64_t>();
  dispatch_dtype(labels.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_integral_v<T>) {
      Tensor src = contiguous_copy(labels);
      const T* p = src.data<T>();
      for (int64_t i = 0; i < src.numel(); ++i) dst[i] = static_cast<int64_t>(p[i]);
    }
  });
  return out;
}

}  // namespace

InMemoryDataset::InMemoryDataset(Tensor features, Tensor labels) {
  GPUML_CHECK(features.defined() && labels.defined(), "dataset: features and labels must be defined");
  GPUML_CHECK(features.device().is_host() && labels.device().is_host(), "dataset: expected host tensors");
  GPUML_CHECK_SHAPE(features.ndim() >= 1, "dataset: features need a leading sample axis, got shape {}",
                    shape_str(features.shape()));
  GPUML_CHECK_KIND(ErrorKind::DType, features.dtype() != DType::boolean, "dataset: boolean features are not numeric");
  GPUML_CHECK_SHAPE(labels.ndim() == 1 && labels.dim(0) == features.dim(0),
                    "dataset: labels {} do not match features {} (expected ({},))", shape_str(labels.shape()),
                    shape_str(features.shape()), features.dim(0));
  features_ = contiguous_copy(features);
  labels_ = labels_as_i64(labels);
}

InMemoryDataset InMemoryDataset::reshape_samples(const Shape& sample_shape) const {
  Shape full = infer_reshape(sample_shape, numel(this->sample_shape()));
  full.insert(full.begin(), size());
  return InMemoryDataset(features_.reshape(full), labels_);
}

InMemoryDataset InMemoryDataset::subset(const std::vector<int64_t>& indices) const {
  Shape shape = features_.shape();
  shape[0] = static_cast<int64_t>(indices.size());
  Tensor x = Tensor::empty(shape, features_.dtype());
  Tensor y = Tensor::empty({shape[0]}, DType::i64);
  size_t row_bytes = static_cast<size_t>(numel(sample_shape())) * dtype_size(features_.dtype());
  const char* src = static_cast<const char*>(features_.raw_data());
  char* dst = static_cast<char*>(x.raw_data());
  for (size_t r = 0; r < indices.size(); ++r) {
    int64_t i = indices[r];
    GPUML_CHECK(i >= 0 && i < size(), "dataset subset: index {} out of range for {} rows", i, size());
    if (row_bytes > 0) std::memcpy(dst + r * row_bytes, src + static_cast<size_t>(i) * row_bytes, row_bytes);
    y.data<int64_t>()[r] = labels_.data<int64_t>()[i];
  }
  return InMemoryDataset(x, y);
}

TrainValSplit split_train_val(const InMemoryDataset& data, double val_fraction, uint64_t seed) {
  GPUML_CHECK(val_fraction > 0.0 && val_fraction < 1.0, "--val-split: fraction must be in (0, 1), got {}",
              val_fraction);
  int64_t n = data.size();
  int64_t n_val = static_cast<int64_t>(std::llround(val_fraction * static_cast<double>(n)));
  GPUML_CHECK(n_val >= 1 && n_val < n, "--val-split {}: {} of {} rows would leave an empty part", val_fraction,
              n_val, n);
  std::vector<int64_t> order = philox_permutation(n, seed, kSplitStream);
  std::vector<int64_t> val(order.begin(), order.begin() + n_val);
  std::vector<int64_t> train(order.begin() + n_val, order.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {data.subset(train), data.subset(val)};
}

}  // namespace gpuml::data
