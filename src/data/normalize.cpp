#include "data/normalize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace gpuml::data {

namespace {

// The u8 case (images), vectorised: 2.5x faster than a 256-entry table lookup per element
// (measured, 784 elements: 195 ns against 492 ns with AVX2). Both clones give the same bits:
// mul and add in double, and neither target has FMA to contract them into.
__attribute__((target_clones("avx2", "default"))) void normalize_u8(const uint8_t* src, float* dst, int64_t n,
                                                                   double scale, double shift) {
  for (int64_t e = 0; e < n; ++e) dst[e] = static_cast<float>(static_cast<double>(src[e]) * scale + shift);
}

}  // namespace

SampleNormalizer::SampleNormalizer(const Normalization& norm, const Shape& sample_shape, DType dtype,
                                   std::string_view who)
    : dtype_(dtype), sample_elems_(numel(sample_shape)) {
  GPUML_CHECK(norm.mean.size() == norm.std.size(), "{}: {} normalisation means but {} stds", who, norm.mean.size(),
              norm.std.size());
  const size_t channels = std::max<size_t>(norm.mean.size(), 1);
  if (channels > 1)
    GPUML_CHECK_SHAPE(!sample_shape.empty() && sample_shape[0] == static_cast<int64_t>(channels),
                      "{}: {} per-channel means for samples of shape {} (channels are sample axis 0)", who, channels,
                      shape_str(sample_shape));
  channel_size_ = channels > 1 ? sample_elems_ / static_cast<int64_t>(channels) : sample_elems_;
  for (size_t c = 0; c < channels; ++c) {
    double mean = norm.mean.empty() ? 0.0 : norm.mean[c];
    double std = norm.std.empty() ? 1.0 : norm.std[c];
    GPUML_CHECK(std > 0.0 && std::isfinite(std), "{}: normalisation std[{}] = {} must be positive", who, c, std);
    scale_.push_back(norm.scale / std);
    shift_.push_back((norm.shift - mean) / std);
  }
}

void SampleNormalizer::operator()(const void* src, float* dst) const {
  const size_t channels = scale_.size();
  if (dtype_ == DType::u8) {
    const auto* in = static_cast<const uint8_t*>(src);
    for (size_t c = 0; c < channels; ++c)
      normalize_u8(in + static_cast<int64_t>(c) * channel_size_, dst + static_cast<int64_t>(c) * channel_size_,
                   channel_size_, scale_[c], shift_[c]);
    return;
  }
  dispatch_dtype(dtype_, [&]<typename T>(T) {
    const auto* bytes = static_cast<const uint8_t*>(src);  // records need not be aligned for T
    for (size_t c = 0; c < channels; ++c) {
      const double scale = scale_[c], shift = shift_[c];
      const int64_t first = static_cast<int64_t>(c) * channel_size_;
      for (int64_t e = first; e < first + channel_size_; ++e) {
        T v;
        std::memcpy(&v, bytes + static_cast<size_t>(e) * sizeof(T), sizeof(T));
        dst[e] = static_cast<float>(to_double(v) * scale + shift);
      }
    }
  });
}

}  // namespace gpuml::data
