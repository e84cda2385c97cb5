// The attention op (FlashAttention-style cpu kernels) against the composite it replaces
// (matmul, scale, causal mask, softmax, matmul: nn/transformer.cpp's before it), as a planned
// forward + backward step on the cpu backend: loss = sum(o * r), gradients of q, k and v. Same
// feeds, same executor; the ratio attention/composite is the op's effect. Shapes: the cpu-small
// preset's (B 12, H 4, T 64, D 32) and a long context (B 1, H 4, T 1024, D 32), causal.
#include <fmt/format.h>

#include <cmath>

#include "backend/dispatch.h"
#include "bench_common.h"
#include "gpuml_op_bench.h"
#include "graph/autodiff.h"
#include "graph/executor.h"

namespace gpuml::bench {

namespace {

struct AttentionShape {
  std::string name;
  int64_t b, h, t, d;
};

// One training step of a causal attention, fused or composed, on the cpu backend.
struct AttentionStep {
  Graph g;
  std::vector<Sym> outputs;
  std::map<std::string, Tensor> feeds;

  AttentionStep(const AttentionShape& s, bool fused, bool train) {
    const Shape shape{s.b, s.h, s.t, s.d};
    Sym q = g.input("q", {shape, DType::f32}), k = g.input("k", {shape, DType::f32}), v = g.input("v", {shape, DType::f32});
    feeds["q"] = random_host_tensor(shape, 1);
    feeds["k"] = random_host_tensor(shape, 2);
    feeds["v"] = random_host_tensor(shape, 3);
    Sym o;
    if (fused) {
      o = attention(q, k, v, /*causal*/ true);
    } else {
      Sym scores = mul_scalar(matmul(q, k, false, true), 1.0 / std::sqrt(static_cast<double>(s.d)));
      Sym rows = reshape(arange(g, s.t, DType::i64), {s.t, 1});
      Sym cols = reshape(arange(g, s.t, DType::i64), {1, s.t});
      Sym probs = softmax(where(ge(rows, cols), scores, fill(g, {}, -INFINITY, DType::f32)), -1);
      o = matmul(probs, v);
    }
    if (!train) {
      outputs = {o};
      return;
    }
    Sym r = g.input("r", {shape, DType::f32});
    feeds["r"] = random_host_tensor(shape, 4);
    Sym loss = sum(mul(o, r));
    outputs = {loss};
    for (Sym grad : gradients(g, loss, {q, k, v})) outputs.push_back(grad);
  }
};

void bench_attention(benchmark::State& state, const AttentionShape& s, bool fused, bool train) {
  AttentionStep step(s, fused, train);
  PlanOptions options;
  options.backends = {&backend_registry().get("cpu")};
  Executor ex(plan_graph(step.g, step.outputs, options));
  ex.run(step.feeds);  // warm-up: oneDNN primitives, the arena
  for (auto _ : state) benchmark::DoNotOptimize(ex.run(step.feeds));
  // Causal attention's useful work: q k^T and P v over the lower triangle, forward (x3 with the
  // backward's four products and the recomputed scores, counted as 2 more forward's worth).
  const double forward = 2.0 * 2.0 * static_cast<double>(s.b * s.h * s.d) * static_cast<double>(s.t * (s.t + 1) / 2);
  set_gflops(state, train ? 3.0 * forward : forward);
}

}  // namespace

// Names: attention/<shape>_<train|fwd>/<fused|composite>.
void register_attention_benchmarks() {
  const AttentionShape shapes[] = {{"cpu_small_b12_h4_t64_d32", 12, 4, 64, 32}, {"long_b1_h4_t1024_d32", 1, 4, 1024, 32}};
  for (const AttentionShape& s : shapes)
    for (bool train : {true, false})
      for (bool fused : {true, false}) {
        const std::string name =
            fmt::format("attention/{}_{}/{}", s.name, train ? "train" : "fwd", fused ? "fused" : "composite");
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { bench_attention(st, s, fused, train); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
}

}  // namespace gpuml::bench
