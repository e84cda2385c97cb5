// Times one gpuml op on the cpu backend, two ways:
//  - eager: run_op, which infers the type, allocates the output and runs the kernel per call (what
//    a user calling ops one by one gets);
//  - kernel: Backend::run into an output allocated once (what the graph executor does, its
//    buffers living in the planned arena).
// The difference between the two is gpuml's per-call overhead, mostly allocation.
//
//   bench_gpuml_op(state, OpId::matmul, {a, b}, attrs, shape.flops(), GpumlMode::kernel);
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "backend/backend.h"
#include "backend/dispatch.h"
#include "bench_common.h"
#include "core/error.h"
#include "ops/type_rules.h"

namespace gpuml::bench {

enum class GpumlMode { eager, kernel };

inline Tensor random_host_tensor(const Shape& shape, uint32_t seed) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::vector<float> values = random_floats(static_cast<size_t>(t.numel()), seed);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

inline void bench_gpuml_op(benchmark::State& state, OpId op, const std::vector<Tensor>& inputs,
                           const Attrs& attrs, double flops, GpumlMode mode) {
  Backend& cpu = backend_registry().get("cpu");
  Tensor out;
  try {
    // Warm-up (oneDNN primitive creation, OpenMP pool) and the check that the kernel exists.
    out = run_op(cpu, op, inputs, attrs);
  } catch (const Error& e) {
    state.SkipWithError(e.message().c_str());
    return;
  }
  if (mode == GpumlMode::eager) {
    for (auto _ : state) {
      Tensor y = run_op(cpu, op, inputs, attrs);
      benchmark::DoNotOptimize(y.raw_data());
    }
  } else {
    for (auto _ : state) {
      cpu.run(op, KernelCall{cpu, inputs, out, attrs, nullptr});
      cpu.synchronize();
      benchmark::DoNotOptimize(out.raw_data());
    }
  }
  set_gflops(state, flops);
}

}  // namespace gpuml::bench
