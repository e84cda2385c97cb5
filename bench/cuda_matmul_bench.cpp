// matmul on the CUDA backend (cuBLASLt) at square sizes, reported as TFLOP/s; tools/gpu-check.sh
// runs it next to torch.matmul. Without a GPU every case is skipped with the reason.
//
//   build/gpuml_bench --benchmark_filter=cuda_matmul      # f32 (exact), tf32 (f32 on TF32 tensor
//                                                         # cores, as --precision tf32) and bf16
#include <benchmark/benchmark.h>

#include "backend/dispatch.h"

namespace gpuml::bench {
namespace {

void cuda_matmul(benchmark::State& state, DType dtype, bool allow_tf32) {
  Backend* gpu = backend_registry().find("cuda");
  if (!gpu) {
    state.SkipWithError(("no CUDA backend: " + backend_registry().cuda_status()).c_str());
    return;
  }
  const int64_t n = state.range(0);
  Attrs fill;
  fill.shape = {n, n};
  fill.dtype = dtype;
  fill.alpha = -1.0;
  fill.beta = 1.0;
  fill.seed = 1;
  Tensor a = run_op(*gpu, OpId::uniform, {}, fill);
  fill.seed = 2;
  Tensor b = run_op(*gpu, OpId::uniform, {}, fill);
  Tensor out = Tensor::empty({n, n}, dtype, *gpu);
  std::vector<Tensor> inputs{a, b};
  Attrs attrs;
  attrs.allow_tf32 = allow_tf32;
  KernelCall call{*gpu, inputs, out, attrs};
  gpu->run(OpId::matmul, call);  // warm-up: heuristics, workspace
  gpu->synchronize();
  for (auto _ : state) {
    gpu->run(OpId::matmul, call);
    gpu->synchronize();
  }
  state.counters["TFLOPs"] = benchmark::Counter(2.0 * static_cast<double>(n) * n * n * 1e-12,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(cuda_matmul, f32, DType::f32, false)->Arg(4096)->Arg(8192)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(cuda_matmul, tf32, DType::f32, true)->Arg(4096)->Arg(8192)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(cuda_matmul, bf16, DType::bf16, false)->Arg(4096)->Arg(8192)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gpuml::bench
