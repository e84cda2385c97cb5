// matmul on the CUDA backend (cuBLASLt) at square sizes, reported as TFLOP/s; tools/gpu-check.sh
// runs it next to torch.matmul. Without a GPU every case is skipped with the reason.
//
//   build/gpuml_bench --benchmark_filter=cuda_matmul      # f32 (exact), tf32 (f32 on TF32 tensor
//                                                         # cores, as --precision tf32) and bf16
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "backend/dispatch.h"

namespace gpuml::bench {
namespace {

// Launches per timed iteration: GPUML_MATMUL_LAUNCHES, default 20 (tools/gpu-check.sh passes the
// same number to the torch peer).
int matmul_launches() {
  const char* env = std::getenv("GPUML_MATMUL_LAUNCHES");
  int n = env ? std::atoi(env) : 0;
  return n > 0 ? n : 20;
}

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
  // An iteration is `launches` back-to-back matmuls and one wait, as bench/torch_matmul.py times
  // torch.matmul: a wait after every call would add a launch gap per matmul that the peer has not.
  const int launches = matmul_launches();
  gpu->run(OpId::matmul, call);  // warm-up: heuristics, workspace
  gpu->synchronize();
  for (auto _ : state) {
    for (int i = 0; i < launches; ++i) gpu->run(OpId::matmul, call);
    gpu->synchronize();
  }
  state.counters["TFLOPs"] = benchmark::Counter(2.0 * static_cast<double>(n) * n * n * launches * 1e-12,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["launches"] = launches;
}

BENCHMARK_CAPTURE(cuda_matmul, f32, DType::f32, false)->Arg(4096)->Arg(8192)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(cuda_matmul, tf32, DType::f32, true)->Arg(4096)->Arg(8192)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(cuda_matmul, bf16, DType::bf16, false)->Arg(4096)->Arg(8192)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gpuml::bench
