#include "core/tensor.h"

#include <algorithm>

namespace gpuml {

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)),
      offset_(offset), dtype_(dtype) {
  GPUML_CHECK_KIND(ErrorKind::Internal, shape_.size() == strides_.size(), "shape {} and {} strides",
                   shape_str(shape_), strides_.size());
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Allocator& allocator) {
  for (int64_t d : shape) GPUML_CHECK_SHAPE(d >= 0, "negative dimension in shape {}", shape_str(shape));
  size_t bytes = 0;
  GPUML_CHECK_SHAPE(!__builtin_mul_overflow(static_cast<size_t>(gpuml::numel(shape)), dtype_size(dtype), &bytes),
                    "shape {} of {} needs more than 2^64 bytes", shape_str(shape), dtype);
  Strides strides = contiguous_strides(shape);  // checked before anything is allocated
  return Tensor(Storage::make(allocator, bytes), shape, std::move(strides), 0, dtype);
}

Tensor Tensor::from_values(const Shape& shape, const std::vector<double>& values, DType dtype) {
  GPUML_CHECK_SHAPE(static_cast<int64_t>(values.size()) == gpuml::numel(shape),
                    "{} values for shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype);
  dispatch_dtype(dtype, [&]<typename T>(T) {
    T* p = static_cast<T*>(t.raw_data());
    for (size_t i = 0; i < values.size(); ++i) p[i] = from_double<T>(values[i]);
  });
  return t;
}

int64_t Tensor::dim(int64_t axis) const { return shape_[normalize_axis(axis, ndim(), "dim")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element to be out of place; contiguous_strides({2, 0, 4}) is {4, 4, 1}
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

Tensor Tensor::view_as(Shape shape, Strides strides, int64_t offset) const {
  return Tensor(storage_, std::move(shape), std::move(strides), offset, dtype_);
}

Tensor Tensor::permute(const std::vector<int64_t>& axes) const {
  GPUML_CHECK_SHAPE(static_cast<int>(axes.size()) == ndim(), "permute: {} axes for a tensor of {} dims",
                    axes.size(), ndim());
  Shape s(axes.size());
  Strides st(axes.size());
  std::vector<bool> seen(axes.size(), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    int a = normalize_axis(axes[i], ndim(), "permute");
    GPUML_CHECK_SHAPE(!seen[a], "permute: axis {} repeated", a);
    seen[a] = true;
    s[i] = shape_[a];
    st[i] = strides_[a];
  }
  return view_as(s, st, offset_);
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> axes(ndim());
  for (int i = 0; i < ndim(); ++i) axes[i] = i;
  std::swap(axes[normalize_axis(a, ndim(), "transpose")], axes[normalize_axis(b, ndim(), "transpose")]);
  return permute(axes);
}

Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end, int64_t step) const {
  int ax = normalize_axis(axis, ndim(), "slice");
  GPUML_CHECK_SHAPE(step > 0, "slice: step must be positive, got {}", step);
  int64_t n = shape_[ax];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape_;
  Strides st = strides_;
  s[ax] = (end - start + step - 1) / step;
  st[ax] = strides_[ax] * step;
  return view_as(s, st, offset_ + start * strides_[ax]);
}

Tensor Tensor::broadcast_to(const Shape& shape) const {
  return view_as(shape, broadcast_strides(shape_, strides_, shape), offset_);
}

Shape infer_reshape(const Shape& shape, int64_t total) {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      GPUML_CHECK_SHAPE(infer < 0, "reshape: more than one -1 in {}", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      GPUML_CHECK_SHAPE(out[i] >= 0, "reshape: negative dim in {}", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    GPUML_CHECK_SHAPE(known != 0 && total % known == 0, "reshape: cannot infer -1 in {} for {} elements",
                      shape_str(shape), total);
    out[infer] = total / known;
  }
  GPUML_CHECK_SHAPE(gpuml::numel(out) == total, "reshape: {} elements cannot be viewed as {}", total,
                    shape_str(shape));
  return out;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = infer_reshape(shape, numel());
  GPUML_CHECK_SHAPE(is_contiguous(), "reshape of a non-contiguous view {}: make it contiguous first",
                    shape_str(shape_));
  return view_as(s, contiguous_strides(s), offset_);
}

double Tensor::item_as_double(int64_t flat) const {
  int64_t off = offset_;
  for (int i = ndim() - 1; i >= 0; --i) {
    off += (flat % shape_[i]) * strides_[i];
    flat /= shape_[i];
  }
  GPUML_CHECK(device().is_host(), "item_as_double on a {} tensor", device().str());
  const char* base = static_cast<const char*>(storage_->data());
  return dispatch_dtype(dtype_, [&]<typename T>(T) {
    return to_double(reinterpret_cast<const T*>(base)[off]);
  });
}

std::vector<double> Tensor::to_doubles() const {
  std::vector<double> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[i] = item_as_double(i);
  return out;
}

}  // namespace gpuml
