// Turns one stored sample (any dtype) into normalised float32, as both loaders need it:
//   y = ((x * scale + shift) - mean[c]) / std[c], computed in double, stored as f32,
// with channel c = sample axis 0 when per-channel means are given. The in-memory DataLoader and
// the streaming ShardLoader share this piece, so both give the same values bit for bit.
// Per channel, one vectorised loop (u8 samples: AVX2 where the CPU has it).
#pragma once

#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace gpuml::data {

// mean/std are empty (no second step), one value (scalar), or one value per channel.
struct Normalization {
  double scale = 1.0;
  double shift = 0.0;
  std::vector<double> mean;
  std::vector<double> std;
};

class SampleNormalizer {
 public:
  // `who` names the loader in error messages (bad std, per-channel means that do not fit).
  SampleNormalizer(const Normalization& norm, const Shape& sample_shape, DType dtype, std::string_view who);

  // src: one sample of sample_elems() values of dtype(); dst: sample_elems() floats.
  void operator()(const void* src, float* dst) const;

  int64_t sample_elems() const { return sample_elems_; }
  DType dtype() const { return dtype_; }

 private:
  DType dtype_;
  int64_t sample_elems_ = 0;
  int64_t channel_size_ = 1;  // elements per channel within a sample
  std::vector<double> scale_, shift_;  // per channel: y = x * scale + shift
};

}  // namespace gpuml::data
