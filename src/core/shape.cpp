#include "core/shape.h"

#include "core/error.h"

namespace gpuml {

// Shapes come from files (IDX dims, NPY headers, ONNX dims): a product past int64 is an error, not
// undefined behaviour that wraps into a small, plausible size.
int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    GPUML_CHECK_SHAPE(!__builtin_mul_overflow(n, d, &n), "shape {} has more than 2^63 elements", shape_str(shape));
  return n;
}

// A zero dim makes numel 0 but not the strides of the other dims: (0, 2^40, 2^40) is checked too.
Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    GPUML_CHECK_SHAPE(!__builtin_mul_overflow(s, shape[i] > 0 ? shape[i] : 1, &s),
                      "shape {} is too large: its strides pass 2^63 elements", shape_str(shape));
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

int normalize_axis(int64_t axis, int ndim, const char* what) {
  GPUML_CHECK_SHAPE(axis >= -ndim && axis < ndim, "{}: axis {} is out of range for a tensor of {} dims",
                    what, axis, ndim);
  return static_cast<int>(axis < 0 ? axis + ndim : axis);
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    GPUML_CHECK_SHAPE(da == db || da == 1 || db == 1,
                      "{}: shapes {} and {} do not broadcast (dim {}: {} vs {})", what, shape_str(a),
                      shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target) {
  GPUML_CHECK_SHAPE(shape.size() <= target.size(), "cannot broadcast {} to {}", shape_str(shape),
                    shape_str(target));
  size_t lead = target.size() - shape.size();
  Strides out(target.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t d = shape[i];
    GPUML_CHECK_SHAPE(d == target[lead + i] || d == 1, "cannot broadcast {} to {}", shape_str(shape),
                      shape_str(target));
    out[lead + i] = (d == 1 && target[lead + i] != 1) ? 0 : strides[i];
  }
  return out;
}

}  // namespace gpuml
