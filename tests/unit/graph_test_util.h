// Helpers for the graph tests (planner, executor, fusion, multi-output nodes): fresh random feeds
// and an elementwise comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace gpuml::testing {

// Standard normal values, never zeros, in `dtype`.
inline Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, DType dtype = DType::f32) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::normal_distribution<double>(0.0, 1.0)(rng);
  return Tensor::from_values(shape, v, dtype);
}

// Same shape, and every element within tol * (1 + |want|).
inline void expect_close(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_EQ(got.shape(), want.shape());
  std::vector<double> a = got.to_doubles(), b = want.to_doubles();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol * (1 + std::abs(b[i]))) << "element " << i;
}

}  // namespace gpuml::testing
