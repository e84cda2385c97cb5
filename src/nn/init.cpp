#include "nn/init.h"

#include <cmath>

#include "core/philox.h"

namespace gpuml::nn {

uint64_t ParamInitializer::next_stream() {
  return next_index_++;
}

void ParamInitializer::store(const std::string& name, Tensor value) {
  GPUML_CHECK(values_.find(name) == values_.end(), "ParamInitializer: '{}' initialised twice",
              name);
  values_.emplace(name, std::move(value));
}

void ParamInitializer::uniform(const std::string& name, const Shape& shape, double bound) {
  uint64_t offset = stream_offset(next_stream());
  Tensor t = Tensor::empty(shape, DType::f32);
  float* data = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    double u = philox_uniform(seed_, offset, static_cast<uint64_t>(i));
    data[i] = static_cast<float>(-bound + 2.0 * bound * u);
  }
  store(name, std::move(t));
}

void ParamInitializer::normal(const std::string& name, const Shape& shape, double mean,
                              double stddev) {
  uint64_t offset = stream_offset(next_stream());
  Tensor t = Tensor::empty(shape, DType::f32);
  float* data = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    data[i] =
        static_cast<float>(mean + stddev * philox_normal(seed_, offset, static_cast<uint64_t>(i)));
  store(name, std::move(t));
}

void ParamInitializer::constant(const std::string& name, const Shape& shape, double value,
                                DType dtype) {
  next_stream();
  store(name, Tensor::from_values(
                  shape, std::vector<double>(static_cast<size_t>(numel(shape)), value), dtype));
}

double default_init_bound(int64_t fan_in) {
  // gain = sqrt(2 / (1 + a^2)) with a = sqrt(5); bound = gain * sqrt(3 / fan_in) = 1 /
  // sqrt(fan_in).
  return fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
}

}  // namespace gpuml::nn
