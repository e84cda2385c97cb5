// Shapes and strides, counted in elements. A stride of 0 is a broadcast dimension.
//
//   Shape s{128, 784};
//   Strides st = contiguous_strides(s);        // {784, 1}
//   Shape out = broadcast_shapes({3, 1}, {4}); // {3, 4}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace gpuml {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3, 4)"
// Maps a possibly negative axis into [0, ndim); throws a Shape error naming `what`.
int normalize_axis(int64_t axis, int ndim, const char* what);
// NumPy broadcasting of two shapes; throws a Shape error naming `what` when they do not fit.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what = "broadcast");
// Strides that read a tensor of `shape`/`strides` as if it had shape `target` (0 where broadcast).
Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target);

}  // namespace gpuml
