// The planner's matmul + bias + activation fusion (PlanOptions::fuse) measured on whole planned
// steps: the mlp preset's layers (784-256-128-10, relu) as a training step (forward, loss,
// gradients) and as an inference step, each planned once with fusion and once without, on the
// cpu backend. Same graph, same feeds, same executor: the ratio is the fusion's effect alone.
#include <fmt/format.h>

#include <random>

#include "bench_common.h"
#include "gpuml_op_bench.h"
#include "graph/autodiff.h"
#include "graph/executor.h"

namespace gpuml::bench {

namespace {

struct MlpStep {
  Graph g;
  std::vector<Sym> outputs;
  std::map<std::string, Tensor> feeds;
  double flops = 0;

  MlpStep(int64_t batch, bool train) {
    const int64_t sizes[] = {784, 256, 128, 10};
    Sym h = g.input("x", {{batch, 784}, DType::f32});
    std::vector<Sym> params;
    feeds["x"] = random_host_tensor({batch, 784}, 1);
    for (int l = 0; l < 3; ++l) {
      const std::string w = fmt::format("w{}", l), b = fmt::format("b{}", l);
      params.push_back(g.param(w, {{sizes[l + 1], sizes[l]}, DType::f32}));
      params.push_back(g.param(b, {{sizes[l + 1]}, DType::f32}));
      feeds[w] = random_host_tensor({sizes[l + 1], sizes[l]}, 10 + l);
      feeds[b] = random_host_tensor({sizes[l + 1]}, 20 + l);
      h = add(matmul(h, params[2 * l], false, true), params[2 * l + 1]);
      if (l < 2) h = relu(h);
      flops += 2.0 * batch * sizes[l] * sizes[l + 1] * (train ? 3 : 1);
    }
    if (!train) {
      outputs = {h};
      return;
    }
    Sym labels = g.input("labels", {{batch}, DType::i64});
    Tensor y = Tensor::empty({batch}, DType::i64);
    std::mt19937 gen(3);
    for (int64_t i = 0; i < batch; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(gen() % 10);
    feeds["labels"] = y;
    Sym loss = cross_entropy(h, labels);
    outputs = {loss};
    for (Sym s : gradients(g, loss, params)) outputs.push_back(s);
  }
};

void bench_step(benchmark::State& state, int64_t batch, bool train, bool fuse) {
  MlpStep step(batch, train);
  PlanOptions options;
  options.backends = {&backend_registry().get("cpu")};
  options.fuse = fuse;
  Executor ex(plan_graph(step.g, step.outputs, options));
  ex.run(step.feeds);  // warm-up: oneDNN primitives are created on the first run
  for (auto _ : state) benchmark::DoNotOptimize(ex.run(step.feeds));
  set_gflops(state, step.flops);
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

void register_fusion_benchmarks() {
  for (bool train : {true, false})
    for (int64_t batch : {128, 1024})
      for (bool fuse : {true, false}) {
        std::string name = fmt::format("fusion/mlp_{}_b{}/{}", train ? "train" : "infer", batch, fuse ? "fused" : "unfused");
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { bench_step(s, batch, train, fuse); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
}

}  // namespace gpuml::bench
