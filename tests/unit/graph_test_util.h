// Helpers for the graph tests (planner, executor, fusion, multi-output nodes): fresh random feeds.
#pragma once

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

}  // namespace gpuml::testing
