// cross_entropy's forward and backward on the cpu backend: one training step's loss and dlogits
// at a character model's size (N = 768 rows, V = 65: cpu-small's 12 x 64 tokens) and at GPT-2's
// (N = 8192 = 8 x 1024 tokens, V = 50304). The kernels write outputs allocated once, as in the
// executor's arena. It builds against the op before and after it kept each row's log-sum-exp
// (issue 20): with one output the backward takes (logits, labels, dloss), with two it also takes
// lse, so the same file measures both sides of the change (BENCHMARKS.md).
//
//   build/bench/gpuml_bench --benchmark_filter=CrossEntropy --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <vector>

#include "backend/backend.h"
#include "backend/dispatch.h"
#include "bench_common.h"
#include "ops/type_rules.h"

namespace gpuml::bench {
namespace {

void BM_CrossEntropyForwardBackward(benchmark::State& state) {
  const int64_t rows = state.range(0), vocab = state.range(1);
  Backend& cpu = backend_registry().get("cpu");
  Tensor logits = Tensor::empty({rows, vocab}, DType::f32);  // (N, V)
  {
    const std::vector<float> values = random_floats(static_cast<size_t>(rows * vocab), 7);
    std::copy(values.begin(), values.end(), logits.data<float>());
  }
  Tensor labels = Tensor::empty({rows}, DType::i64);  // (N,)
  for (int64_t r = 0; r < rows; ++r) labels.data<int64_t>()[r] = (r * 7919) % vocab;
  Tensor dloss = Tensor::from_values({}, {1.0}, DType::f32);
  const Attrs attrs;
  const TensorType in_types[] = {type_of(logits), type_of(labels)};
  const std::vector<TensorType> out_types = infer_types(OpId::cross_entropy, in_types, attrs);
  Tensor loss = Tensor::empty(out_types[0].shape, out_types[0].dtype);  // ()
  std::vector<Tensor> kept;  // lse (N,) where the op keeps it
  for (size_t i = 1; i < out_types.size(); ++i) kept.push_back(Tensor::empty(out_types[i].shape, out_types[i].dtype));
  Tensor dlogits = Tensor::empty({rows, vocab}, DType::f32);  // (N, V)
  std::vector<Tensor> forward_in = {logits, labels}, backward_in = {logits, labels, dloss};
  backward_in.insert(backward_in.end(), kept.begin(), kept.end());
  const KernelCall forward{cpu, forward_in, loss, attrs, nullptr, nullptr, kept};
  const KernelCall backward{cpu, backward_in, dlogits, attrs};
  for (auto _ : state) {
    cpu.run(OpId::cross_entropy, forward);
    cpu.run(OpId::cross_entropy_backward, backward);
    cpu.synchronize();
    benchmark::DoNotOptimize(dlogits.raw_data());
  }
  state.counters["elements/s"] = benchmark::Counter(static_cast<double>(rows * vocab) *
                                                        static_cast<double>(state.iterations()),
                                                    benchmark::Counter::kIsRate);
}

BENCHMARK(BM_CrossEntropyForwardBackward)
    ->Args({768, 65})
    ->Args({8192, 50304})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace gpuml::bench
