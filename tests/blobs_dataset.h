// A small classification set for trainer tests: `rows` rows of 20 normal features; the class is
// which of 4 feature groups (5 features each) has the largest sum.
#pragma once

#include <cstdint>
#include <random>

#include "data/dataset.h"

namespace gpuml::testing {

inline data::InMemoryDataset blobs(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.f, 1.f);
  Tensor x = Tensor::empty({rows, 20}, DType::f32), y = Tensor::empty({rows}, DType::i64);
  for (int64_t r = 0; r < rows; ++r) {
    float best = -1e30f;
    for (int64_t f = 0; f < 20; ++f) x.data<float>()[r * 20 + f] = noise(rng);
    for (int64_t g = 0; g < 4; ++g) {
      float sum = 0;
      for (int64_t f = 0; f < 5; ++f) sum += x.data<float>()[r * 20 + g * 5 + f];
      if (sum > best) best = sum, y.data<int64_t>()[r] = g;
    }
  }
  return data::InMemoryDataset(x, y);
}

}  // namespace gpuml::testing
