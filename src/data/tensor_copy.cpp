#include "data/tensor_copy.h"

#include <cstring>
#include <vector>

namespace gpuml::data {

Tensor contiguous_copy(const Tensor& t, bool always_copy) {
  GPUML_CHECK(t.device().is_host(), "contiguous_copy: expected a host tensor, got {}", t.device().str());
  if (t.is_contiguous() && !always_copy) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  if (t.numel() == 0) return out;
  if (t.is_contiguous()) {
    std::memcpy(out.raw_data(), t.raw_data(), t.nbytes());
    return out;
  }
  dispatch_dtype(t.dtype(), [&]<typename T>(T) {
    const T* src = static_cast<const T*>(t.raw_data());
    T* dst = static_cast<T*>(out.raw_data());
    int nd = t.ndim();
    std::vector<int64_t> index(nd, 0);
    int64_t src_offset = 0;
    for (int64_t flat = 0, n = t.numel(); flat < n; ++flat) {
      dst[flat] = src[src_offset];
      // Odometer increment of the multi-index, keeping the source offset in step.
      for (int d = nd - 1; d >= 0; --d) {
        if (++index[d] < t.shape()[d]) {
          src_offset += t.strides()[d];
          break;
        }
        src_offset -= t.strides()[d] * (t.shape()[d] - 1);
        index[d] = 0;
      }
    }
  });
  return out;
}

}  // namespace gpuml::data
