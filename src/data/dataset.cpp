#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/permutation.h"
#include "data/tensor_copy.h"

namespace gpuml::data {
namespace {

// Integers as i64, floating values as f32: the two target dtypes the tasks train on.
Tensor labels_of(const Tensor& labels) {
  GPUML_CHECK_KIND(ErrorKind::DType, labels.dtype() != DType::boolean,
                   "dataset: labels must be numbers (class ids, token ids or values), got {}", labels.dtype());
  const DType want = is_integral(labels.dtype()) ? DType::i64 : DType::f32;
  if (labels.dtype() == want) return contiguous_copy(labels);
  Tensor out = Tensor::empty(labels.shape(), want);
  if (want == DType::f32) {  // f64, f16, bf16 values
    std::vector<double> v = labels.to_doubles();
    for (size_t i = 0; i < v.size(); ++i) out.data<float>()[i] = static_cast<float>(v[i]);
    return out;
  }
  Tensor src = contiguous_copy(labels);
  dispatch_dtype(labels.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_integral_v<T>) {
      const T* p = src.data<T>();
      int64_t* dst = out.data<int64_t>();
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
  GPUML_CHECK_SHAPE(labels.ndim() >= 1 && labels.dim(0) == features.dim(0),
                    "dataset: labels {} do not match features {} (expected ({}, ...))", shape_str(labels.shape()),
                    shape_str(features.shape()), features.dim(0));
  features_ = contiguous_copy(features);
  labels_ = labels_of(labels);
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
  Shape y_shape = labels_.shape();
  y_shape[0] = shape[0];
  Tensor y = Tensor::empty(y_shape, labels_.dtype());
  const size_t row_bytes = static_cast<size_t>(numel(sample_shape())) * dtype_size(features_.dtype());
  const size_t label_bytes = static_cast<size_t>(numel(label_shape())) * dtype_size(labels_.dtype());
  const char* src = static_cast<const char*>(features_.raw_data());
  const char* label_src = static_cast<const char*>(labels_.raw_data());
  char* dst = static_cast<char*>(x.raw_data());
  char* label_dst = static_cast<char*>(y.raw_data());
  for (size_t r = 0; r < indices.size(); ++r) {
    int64_t i = indices[r];
    GPUML_CHECK(i >= 0 && i < size(), "dataset subset: index {} out of range for {} rows", i, size());
    if (row_bytes > 0) std::memcpy(dst + r * row_bytes, src + static_cast<size_t>(i) * row_bytes, row_bytes);
    if (label_bytes > 0)
      std::memcpy(label_dst + r * label_bytes, label_src + static_cast<size_t>(i) * label_bytes, label_bytes);
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
