// The fused Adam update (adam_update) on the cpu backend at the mlp preset's size (its 235k
// parameters padded to 256-byte columns, as ModelRunner lays them out), on 1 and 2 OpenMP
// threads: what each rank of a 2-rank data-parallel mlp step pays for its update (1 thread),
// against what one process pays (2 threads). The output is a second state buffer, as
// ModelRunner's double-buffered state. Bytes/s counts what the pass reads and writes.
// adam_denormal_m puts denormal first moments in the state, as training does (the kernel
// flushes them: cpu_optim.cpp's FlushDenormals).
//
//   build/bench/gpuml_bench --benchmark_filter=AdamUpdate --benchmark_repetitions=5
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

#include "backend/backend.h"
#include "bench_common.h"
#include "gpuml_op_bench.h"

namespace gpuml::bench {
namespace {

// 784*256, 256, 256*128, 128, 128*10 and 10 floats, each padded to a multiple of 64 (256 bytes).
constexpr int64_t kMlpColumns = 235'200;

// `denormal_m`: one m in 9 is a denormal float (1e-39) and its gradient 0, as in the mlp's state
// after 3000 steps (Fashion-MNIST, batch 64: 11% of the first layer's exp_avg are denormal, the
// moments of units whose gradient became 0 decaying by beta1 each step), and one gradient in 9
// is 1e-20, whose square underflows.
void BM_AdamUpdate(benchmark::State& state, double weight_decay, bool decoupled, bool denormal_m = false) {
  const int threads = static_cast<int>(state.range(0));
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  Backend& cpu = backend_registry().get("cpu");
  Tensor st = random_host_tensor({3, kMlpColumns}, 1);
  for (int64_t i = 2 * kMlpColumns; i < 3 * kMlpColumns; ++i) st.data<float>()[i] *= st.data<float>()[i];  // v >= 0
  Tensor grad = random_host_tensor({kMlpColumns}, 2);
  if (denormal_m)
    for (int64_t i = 0; i < kMlpColumns; i += 9) {
      st.data<float>()[kMlpColumns + i] = 1e-39f;
      grad.data<float>()[i] = 0;
      if (i + 4 < kMlpColumns) grad.data<float>()[i + 4] = 1e-20f;  // its square underflows
    }
  Tensor hyper = Tensor::empty({3}, DType::f32);
  hyper.data<float>()[0] = 1e-3f;
  hyper.data<float>()[1] = 0.1f;    // 1 - beta1^1
  hyper.data<float>()[2] = 0.001f;  // 1 - beta2^1
  Tensor decay = Tensor::empty({kMlpColumns}, DType::f32);
  for (int64_t i = 0; i < kMlpColumns; ++i) decay.data<float>()[i] = 1;
  Tensor out = Tensor::empty({3, kMlpColumns}, DType::f32);
  Attrs a;
  a.beta1 = 0.9;
  a.beta2 = 0.999;
  a.eps = 1e-8;
  a.weight_decay = weight_decay;
  a.decoupled_weight_decay = decoupled;
  const std::vector<Tensor> inputs{st, grad, hyper, decay};
  const KernelCall call{cpu, inputs, out, a, nullptr};
  for (auto _ : state) {
    cpu.run(OpId::adam_update, call);
    cpu.synchronize();
    benchmark::DoNotOptimize(out.raw_data());
  }
  const double streams = 3 + 1 + 1 + 3;  // state, grad, mask, new state
  state.counters["bytes/s"] = benchmark::Counter(streams * kMlpColumns * 4.0 * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
  omp_set_num_threads(before);
}

BENCHMARK_CAPTURE(BM_AdamUpdate, adam, 0.0, false)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_AdamUpdate, adam_denormal_m, 0.0, false, true)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_AdamUpdate, adam_weight_decay, 0.01, false)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_AdamUpdate, adamw, 0.01, true)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace gpuml::bench
