// A typed, strided view of a Storage. Views (permute, slice, broadcast_to, reshape of a
// contiguous tensor) share storage and copy nothing.
//
//   Tensor x = Tensor::empty({2, 3}, DType::f32);
//   x.data<float>()[0] = 1.f;                 // host tensors only
//   Tensor xt = x.permute({1, 0});            // (3, 2) view, no copy
//   Tensor row = x.slice(0, 1, 2);            // (1, 3) view
#pragma once

#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace gpuml {

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset, DType dtype);

  // New contiguous tensor; its contents are undefined.
  static Tensor empty(const Shape& shape, DType dtype, Allocator& allocator = host_allocator());
  // Host tensor holding a copy of `values` converted to `dtype`.
  static Tensor from_values(const Shape& shape, const std::vector<double>& values, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int64_t offset() const { return offset_; }  // in elements
  DType dtype() const { return dtype_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int64_t axis) const;
  int64_t numel() const { return gpuml::numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  Device device() const { return storage_ ? storage_->device() : Device{}; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool is_contiguous() const;

  // Pointer to element 0 of the view (device memory for device tensors).
  void* raw_data() const;
  template <typename T>
  T* data() const {
    GPUML_CHECK_KIND(ErrorKind::DType, DTypeOf<T>::value == dtype_, "tensor is {}, accessed as {}",
                     dtype_, DTypeOf<T>::value);
    GPUML_CHECK(device().is_host(), "data<T>() on a {} tensor; copy it to the host first", device().str());
    return static_cast<T*>(raw_data());
  }

  // Views.
  Tensor permute(const std::vector<int64_t>& axes) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor broadcast_to(const Shape& shape) const;
  // A view when the layout allows it (contiguous), else throws; one dim may be -1.
  Tensor reshape(const Shape& shape) const;
  Tensor view_as(Shape shape, Strides strides, int64_t offset) const;

  // Element access through double, for tests and the reference backend (host only).
  double item_as_double(int64_t flat_index) const;  // index in logical row-major order
  std::vector<double> to_doubles() const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Strides strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::f32;
};

// Resolves one -1 in `shape` against `total` elements; throws a Shape error when it cannot.
Shape infer_reshape(const Shape& shape, int64_t total);

}  // namespace gpuml
