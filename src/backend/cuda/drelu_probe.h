// The numbers of the DRELU layout probe (cuda_matmul.cpp): y = relu_backward-style mask of a
// small integer product, exact in f32. Plain C++ (no CUDA header), so that a unit test can show
// on any machine that every product entry is nonzero: a zero entry hides its mask bit, since the
// product is 0 whether cuBLASLt read the bit as set or not.
//
//   DreluProbe p = make_drelu_probe();   // p.a (m, k), p.b (k, n), p.y (m, n), p.want (m, n)
#pragma once

#include <cstdint>
#include <vector>

namespace gpuml::cuda {

struct DreluProbe {
  int64_t m = 3, k = 4, n = 132;  // two 128-bit words per mask row, the second padded but with set and clear bits
  std::vector<double> a, b, y, product, want;
};

inline DreluProbe make_drelu_probe() {
  DreluProbe p;
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t q = 0; q < p.k; ++q) p.a.push_back(static_cast<double>((i * 3 + q) % 5 - 2));
  // Rows of b differ (an earlier (q * 7 + j) % 7 made them equal, so a row of `a` summing to 0
  // zeroed a whole product row and tested none of its mask bits).
  for (int64_t q = 0; q < p.k; ++q)
    for (int64_t j = 0; j < p.n; ++j) p.b.push_back(static_cast<double>((q + j) % 7 - 3));
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      p.y.push_back(static_cast<double>((i * 11 + j * 5) % 3 - 1));  // -1, 0, 1: 0 is not > 0
      double dot = 0;
      for (int64_t q = 0; q < p.k; ++q) dot += p.a[i * p.k + q] * p.b[q * p.n + j];
      p.product.push_back(dot);
      p.want.push_back(p.y.back() > 0 ? dot : 0.0);
    }
  return p;
}

}  // namespace gpuml::cuda
