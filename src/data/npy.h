// NPY files: read versions 1.0, 2.0 and 3.0 (any supported dtype, either byte order, C or
// Fortran order) into a contiguous C-order host tensor; write v1.0 little-endian C order,
// atomically (the file appears whole or not at all).
//
//   Tensor x = data::read_npy("features.npy");          // e.g. (N, 784) f32
//   data::write_npy("predictions.npy", logits);          // any host tensor but bf16
//
// See data/npy_format.h for the dtype mapping. Object arrays are refused and never unpickled.
#pragma once

#include <string>

#include "core/tensor.h"

namespace gpuml::data {

Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace gpuml::data
