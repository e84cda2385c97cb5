// Parameter initialisation as PyTorch does it, drawn with gpuml's Philox so that a seed gives the
// same values on every machine and backend.
//
// Streams: the k-th state_dict entry (k = 0, 1, ... in state_dict order, buffers included) draws
// element i from philox_uniform / philox_normal(seed, k << 40, i). Every entry has 2^40 blocks
// (2^42 values) to itself, so streams never overlap, and an entry's values depend only on the
// seed and its position.
//
//   ParamInitializer init(/*seed*/ 0);
//   init.uniform("1.weight", {256, 784}, 1.0 / std::sqrt(784.0));   // U(-b, b), stream k = 0
//   init.uniform("1.bias", {256}, 1.0 / std::sqrt(784.0));           // stream k = 1
//   std::map<std::string, Tensor> values = init.take();
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.h"

namespace gpuml::nn {

class ParamInitializer {
 public:
  explicit ParamInitializer(uint64_t seed) : seed_(seed) {}

  // U(-bound, bound), f32.
  void uniform(const std::string& name, const Shape& shape, double bound);
  // N(mean, stddev), f32.
  void normal(const std::string& name, const Shape& shape, double mean, double stddev);
  // Every element = value (ones, zeros, a 0 counter); consumes a stream index like the others.
  void constant(const std::string& name, const Shape& shape, double value,
                DType dtype = DType::f32);

  static constexpr int kStreamShift = 40;
  uint64_t stream_offset(uint64_t index) const { return index << kStreamShift; }
  uint64_t seed() const { return seed_; }

  std::map<std::string, Tensor> take() { return std::move(values_); }

 private:
  uint64_t next_stream();  // the state_dict index of the next entry
  void store(const std::string& name, Tensor value);

  uint64_t seed_;
  uint64_t next_index_ = 0;
  std::map<std::string, Tensor> values_;
};

// kaiming_uniform_(a=sqrt(5)) and PyTorch's default bias init both reduce to U(-b, b) with this b.
double default_init_bound(int64_t fan_in);

}  // namespace gpuml::nn
