// The IDX format of MNIST and Fashion-MNIST: magic 00 00 <type> <ndims>, ndims big-endian u32
// dims, then the big-endian data. Plain or gzip (detected by the magic bytes, not the name).
//
//   Tensor images = data::read_idx("train-images-idx3-ubyte.gz");  // (60000, 28, 28) u8
//   Tensor labels = data::read_idx("train-labels-idx1-ubyte.gz");  // (60000,) u8
//
// Element types map to the nearest gpuml dtype: u8 -> u8, i8/i16/i32 -> i32, f32 -> f32,
// f64 -> f64. Every malformed input is an ErrorKind::Io error naming the file and the problem.
#pragma once

#include <string>

#include "core/tensor.h"

namespace gpuml::data {

// At most this many dims (MNIST uses 1 or 3).
inline constexpr int kIdxMaxDims = 8;

Tensor read_idx(const std::string& path);

}  // namespace gpuml::data
