// The planner's matmul/conv2d + bias + activation fusion (PlanOptions::fuse) measured on whole
// planned steps: the mlp and cnn presets' layers as a training step (forward, loss, gradients)
// and as an inference step, each planned once with fusion and once without, on the cpu backend
// and (when there is one) the GPU. Same graph, same feeds, same executor: the ratio is the
// fusion's effect alone.
#include <fmt/format.h>

#include <random>

#include "backend/dispatch.h"
#include "bench_common.h"
#include "gpuml_op_bench.h"
#include "graph/autodiff.h"
#include "graph/executor.h"

namespace gpuml::bench {

namespace {

// One planned step of a preset's layers, built as nn::Linear and nn::Conv2d build them.
struct PresetStep {
  Graph g;
  std::vector<Sym> outputs;
  std::map<std::string, Tensor> feeds;
  std::vector<Sym> params;
  double flops = 0;  // of the matmuls and convolutions, forward (x3 for a training step)

  Sym param(const Shape& shape) {
    const std::string name = fmt::format("p{}", params.size());
    params.push_back(g.param(name, {shape, DType::f32}));
    feeds[name] = random_host_tensor(shape, static_cast<uint32_t>(10 + params.size()));
    return params.back();
  }
  Sym linear(Sym h, int64_t in, int64_t out, bool act) {
    h = add(matmul(h, param({out, in}), false, true), param({out}));
    flops += 2.0 * static_cast<double>(h.shape()[0] * in * out);
    return act ? relu(h) : h;
  }
  Sym conv(Sym h, int64_t in, int64_t out) {
    Attrs same;
    same.padding = {1, 1};
    h = add(conv2d(h, param({out, in, 3, 3}), same), reshape(param({out}), {1, out, 1, 1}));
    flops += 2.0 * static_cast<double>(numel(h.shape()) * in * 9);
    return relu(h);
  }

  PresetStep(const std::string& model, int64_t batch, bool train) {
    Sym h;
    if (model == "mlp") {
      h = g.input("x", {{batch, 784}, DType::f32});
      feeds["x"] = random_host_tensor({batch, 784}, 1);
      h = linear(linear(linear(h, 784, 256, true), 256, 128, true), 128, 10, false);
    } else {
      h = g.input("x", {{batch, 1, 28, 28}, DType::f32});
      feeds["x"] = random_host_tensor({batch, 1, 28, 28}, 1);
      h = max_pool2d(conv(h, 1, 32), 2);
      h = max_pool2d(conv(h, 32, 64), 2);
      h = linear(linear(reshape(h, {batch, 64 * 7 * 7}), 64 * 7 * 7, 128, true), 128, 10, false);
    }
    if (train) flops *= 3;
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

void bench_step(benchmark::State& state, const std::string& device, const std::string& model, int64_t batch,
                bool train, bool fuse) {
  PresetStep step(model, batch, train);
  PlanOptions options;
  options.backends = {&backend_registry().get("cpu")};
  if (device == "cuda") {
    Backend* gpu = backend_registry().find("cuda");
    if (!gpu) {
      state.SkipWithError(("no CUDA backend: " + backend_registry().cuda_status()).c_str());
      return;
    }
    options.backends = {gpu, &backend_registry().get("cpu"), &backend_registry().reference()};
    for (auto& [name, t] : step.feeds) t = to_backend(t, *gpu);  // resident, as a trainer keeps them
  }
  options.fuse = fuse;
  Executor ex(plan_graph(step.g, step.outputs, options));
  ex.run(step.feeds);  // warm-up: oneDNN primitives are created on the first run
  for (auto _ : state) benchmark::DoNotOptimize(ex.run(step.feeds));
  set_gflops(state, step.flops);
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

// Names: fusion/<device>_<model>_<train|infer>_b<batch>/<fused|unfused>. The cuda cases are
// skipped without a GPU (tools/gpu-check.sh runs them).
void register_fusion_benchmarks() {
  for (std::string device : {"cpu", "cuda"})
    for (std::string model : {"mlp", "cnn"})
      for (bool train : {true, false})
        for (int64_t batch : {128, 1024}) {
          if (device == "cpu" && model == "cnn" && batch > 128) continue;  // seconds per step on 2 cores
          for (bool fuse : {true, false}) {
            std::string name = fmt::format("fusion/{}_{}_{}_b{}/{}", device, model, train ? "train" : "infer", batch,
                                           fuse ? "fused" : "unfused");
            benchmark::RegisterBenchmark(
                name.c_str(), [=](benchmark::State& s) { bench_step(s, device, model, batch, train, fuse); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
        }
}

}  // namespace gpuml::bench
