// The elementwise ops of a GPT's MLP under mixed precision on the cpu backend: gelu (tanh form),
// its backward, and the f32 <-> bf16 casts, at cpu-small's MLP activation size (768 tokens x 512)
// in f32 and bf16. Outputs are allocated once, as in the executor's arena. Bytes/s counts what the
// kernel reads and writes.
//
//   build/bench/gpuml_bench --benchmark_filter=Elementwise --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <vector>

#include "backend/backend.h"
#include "backend/dispatch.h"
#include "bench_common.h"
#include "ops/type_rules.h"

namespace gpuml::bench {
namespace {

Tensor random_of(const Shape& shape, DType dtype, uint32_t seed) {
  Tensor t = Tensor::empty(shape, DType::f32);
  const std::vector<float> values = random_floats(static_cast<size_t>(t.numel()), seed);
  std::copy(values.begin(), values.end(), t.data<float>());
  if (dtype == DType::f32) return t;
  Attrs to;
  to.dtype = dtype;
  return run_op(backend_registry().get("cpu"), OpId::cast, {t}, to);
}

// op on inputs of `in` dtype; cast's target is `out`.
void BM_Elementwise(benchmark::State& state, OpId op, DType in, DType out) {
  const Shape shape{768, 512};
  Backend& cpu = backend_registry().get("cpu");
  Attrs attrs;
  attrs.gelu_tanh = true;
  attrs.dtype = out;
  std::vector<Tensor> inputs{random_of(shape, in, 1)};
  if (op == OpId::gelu_backward) inputs.push_back(random_of(shape, in, 2));
  Tensor y = Tensor::empty(shape, out);
  const KernelCall call{cpu, inputs, y, attrs};
  for (auto _ : state) {
    cpu.run(op, call);
    cpu.synchronize();
    benchmark::DoNotOptimize(y.raw_data());
  }
  double bytes = static_cast<double>(y.nbytes());
  for (const Tensor& t : inputs) bytes += static_cast<double>(t.nbytes());
  state.counters["bytes/s"] =
      benchmark::Counter(bytes * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_Elementwise, gelu_f32, OpId::gelu, DType::f32, DType::f32)->UseRealTime();
BENCHMARK_CAPTURE(BM_Elementwise, gelu_bf16, OpId::gelu, DType::bf16, DType::bf16)->UseRealTime();
BENCHMARK_CAPTURE(BM_Elementwise, gelu_backward_f32, OpId::gelu_backward, DType::f32, DType::f32)->UseRealTime();
BENCHMARK_CAPTURE(BM_Elementwise, gelu_backward_bf16, OpId::gelu_backward, DType::bf16, DType::bf16)->UseRealTime();
BENCHMARK_CAPTURE(BM_Elementwise, cast_f32_to_bf16, OpId::cast, DType::f32, DType::bf16)->UseRealTime();
BENCHMARK_CAPTURE(BM_Elementwise, cast_bf16_to_f32, OpId::cast, DType::bf16, DType::f32)->UseRealTime();

// sum over the leading axis of a (rows, width) tensor: a linear bias's or a layer norm's weight
// gradient at cpu-small's sizes (768 tokens, 128 or 512 wide).
void BM_ColumnSum(benchmark::State& state, DType dtype) {
  const Shape shape{768, state.range(0)};
  Backend& cpu = backend_registry().get("cpu");
  Attrs attrs;
  attrs.axes = {0};
  std::vector<Tensor> inputs{random_of(shape, dtype, 1)};
  Tensor y = Tensor::empty({shape[1]}, dtype);
  const KernelCall call{cpu, inputs, y, attrs};
  for (auto _ : state) {
    cpu.run(OpId::sum, call);
    cpu.synchronize();
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(inputs[0].nbytes()) *
                                                     static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_ColumnSum, f32, DType::f32)->Arg(128)->Arg(512)->UseRealTime();

// layer_norm and its backward over cpu-small's (768, 128) rows: x in `x_type`, weight and bias f32
// (mixed precision when x is bf16).
void BM_LayerNorm(benchmark::State& state, DType x_type, bool backward) {
  Backend& cpu = backend_registry().get("cpu");
  const Tensor x = random_of({768, 128}, x_type, 1), w = random_of({128}, DType::f32, 2);
  const Tensor b = random_of({128}, DType::f32, 3), dy = random_of({768, 128}, x_type, 4);
  Attrs attrs;
  attrs.axis = -1;
  attrs.eps = 1e-5;
  const std::vector<Tensor> fwd = run_op_outputs(cpu, OpId::layer_norm, {x, w, b}, attrs);
  for (auto _ : state) {
    if (backward) benchmark::DoNotOptimize(run_op_outputs(cpu, OpId::layer_norm_backward, {x, w, dy, fwd[1], fwd[2]}, attrs));
    else benchmark::DoNotOptimize(run_op_outputs(cpu, OpId::layer_norm, {x, w, b}, attrs));
  }
}
BENCHMARK_CAPTURE(BM_LayerNorm, f32, DType::f32, false)->UseRealTime();
BENCHMARK_CAPTURE(BM_LayerNorm, bf16, DType::bf16, false)->UseRealTime();
BENCHMARK_CAPTURE(BM_LayerNorm, backward_f32, DType::f32, true)->UseRealTime();
BENCHMARK_CAPTURE(BM_LayerNorm, backward_bf16, DType::bf16, true)->UseRealTime();
BENCHMARK_CAPTURE(BM_ColumnSum, bf16, DType::bf16)->Arg(128)->Arg(512)->UseRealTime();

}  // namespace
}  // namespace gpuml::bench
