#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "graph/compiled_graph.h"
#include "graph/executor.h"
#include "graph_test_util.h"
#include "host_test_backend.h"

namespace gpuml {
namespace {

using testing::random_tensor;

// An MLP step: forward, loss, and the gradients of every param.
struct Mlp {
  Graph g;
  std::vector<Sym> outputs;
  Mlp() {
    Sym x = g.input("x", {{8, 16}, DType::f32});
    Sym w1 = g.param("w1", {{16, 32}, DType::f32});
    Sym b1 = g.param("b1", {{32}, DType::f32});
    Sym w2 = g.param("w2", {{10, 32}, DType::f32});
    Sym b2 = g.param("b2", {{10}, DType::f32});
    Sym h = relu(add(matmul(x, w1), b1));
    Sym y = add(matmul(h, w2, false, true), b2);
    Sym loss = mean(mul(tanh(y), y));
    outputs = {loss};
    for (Sym s : gradients(g, loss, {w1, b1, w2, b2})) outputs.push_back(s);
  }
  std::map<std::string, Tensor> feeds(std::mt19937_64& rng) const {
    std::map<std::string, Tensor> f;
    for (const char* name : {"x", "w1", "b1", "w2", "b2"}) f[name] = random_tensor(g.type_of(g.find_leaf(name)).shape, rng);
    return f;
  }
};

void expect_no_live_overlap(const Plan& plan) {
  for (size_t i = 0; i < plan.values.size(); ++i) {
    const PlanValue& a = plan.values[i];
    if (a.home != ValueHome::Arena) continue;
    EXPECT_EQ(a.offset % 64, 0u) << "v" << i;
    EXPECT_LE(a.offset + a.bytes, plan.arenas[a.arena].peak_bytes) << "v" << i;
    EXPECT_LE(a.first_step, a.last_step) << "v" << i;
    for (size_t j = i + 1; j < plan.values.size(); ++j) {
      const PlanValue& b = plan.values[j];
      if (b.home != ValueHome::Arena || b.arena != a.arena) continue;
      bool live_together = a.first_step <= b.last_step && b.first_step <= a.last_step;
      bool bytes_overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      EXPECT_FALSE(live_together && bytes_overlap) << "v" << i << " and v" << j << " share memory while both live\n"
                                                   << plan.to_string();
    }
  }
  // Every read happens inside the lifetime of the buffer it reads.
  for (size_t s = 0; s < plan.steps.size(); ++s)
    for (int in : plan.steps[s].inputs) {
      const PlanValue& root = plan.values[plan.root_of(in)];
      if (root.home != ValueHome::Arena) continue;
      EXPECT_LE(root.first_step, static_cast<int>(s));
      EXPECT_GE(root.last_step, static_cast<int>(s));
    }
  for (int out : plan.outputs) {
    const PlanValue& root = plan.values[plan.root_of(out)];
    if (root.home == ValueHome::Arena) {
      EXPECT_EQ(root.last_step, static_cast<int>(plan.steps.size()));
    }
  }
}

TEST(Planner, ReuseLowersPeakWithoutOverlappingLiveTensors) {
  Mlp m;
  PlanOptions no_reuse;
  no_reuse.reuse_memory = false;
  Plan reused = plan_graph(m.g, m.outputs, {});
  Plan separate = plan_graph(m.g, m.outputs, no_reuse);
  EXPECT_LE(reused.peak_bytes(), reused.unshared_bytes());
  EXPECT_LT(reused.peak_bytes(), separate.peak_bytes()) << reused.to_string();
  EXPECT_EQ(separate.peak_bytes(), separate.unshared_bytes());
  EXPECT_EQ(reused.unshared_bytes(), separate.unshared_bytes());
  expect_no_live_overlap(reused);
  expect_no_live_overlap(separate);
}

TEST(Planner, ResultsAreBitwiseIdenticalWithAndWithoutReuse) {
  Mlp m;
  std::mt19937_64 rng(std::random_device{}());
  PlanOptions no_reuse;
  no_reuse.reuse_memory = false;
  Executor reused(plan_graph(m.g, m.outputs, {}));
  Executor separate(plan_graph(m.g, m.outputs, no_reuse));
  EXPECT_EQ(reused.arena_bytes(), reused.plan().peak_bytes());
  for (int run = 0; run < 2; ++run) {  // a second run must not see the first run's leftovers
    auto feeds = m.feeds(rng);
    std::vector<Tensor> a = reused.run(feeds), b = separate.run(feeds);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].shape(), b[i].shape());
      EXPECT_EQ(0, std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes())) << "output " << i;
    }
    EXPECT_TRUE(std::isfinite(a[0].item_as_double(0)));
  }
}

TEST(Planner, OutputsSurviveTheNextRun) {
  Graph g;
  Sym x = g.input("x", {{3, 4}, DType::f32});
  Executor ex(plan_graph(g, {exp(x)}));
  std::mt19937_64 rng(std::random_device{}());
  Tensor x1 = random_tensor({3, 4}, rng), x2 = random_tensor({3, 4}, rng);
  std::vector<Tensor> first = ex.run({{"x", x1}});
  std::vector<double> before = first[0].to_doubles();
  ex.run({{"x", x2}});
  EXPECT_EQ(first[0].to_doubles(), before);
  for (int64_t i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(before[i], std::exp(static_cast<float>(x1.item_as_double(i))));
}

TEST(Planner, ViewsMakeNoBufferAndKeepTheirBaseAlive) {
  Graph g;
  Sym x = g.input("x", {{4, 6}, DType::f32});
  Sym e = exp(x);                                        // the only buffer the views read
  Sym v = slice(permute(e, {1, 0}), 0, 1, 5, 2);         // (2, 4) view
  Sym b = broadcast_to(reshape(sum(x, {1}), {1, 4}), {2, 4});
  Sym out = add(v, b);
  PlanOptions ref_only;
  ref_only.backends = {&backend_registry().reference()};
  Plan plan = plan_graph(g, {out}, ref_only);
  int views = 0, e_value = -1, kernels = 0;
  for (const PlanStep& s : plan.steps) {
    const PlanValue& v_out = plan.values[s.output];
    if (s.kind == StepKind::View) {
      ++views;
      EXPECT_EQ(v_out.home, ValueHome::Alias);
      EXPECT_EQ(v_out.arena, -1);
    }
    if (s.kind == StepKind::Kernel) ++kernels;
    if (v_out.graph_node == e.id) e_value = s.output;
  }
  EXPECT_EQ(views, 4);    // permute, slice, reshape, broadcast_to
  EXPECT_EQ(kernels, 3);  // exp, sum, add
  ASSERT_GE(e_value, 0);
  const PlanValue& ev = plan.values[e_value];
  EXPECT_EQ(ev.last_step, static_cast<int>(plan.steps.size()) - 1) << "exp's buffer must live until add reads its view";
  size_t buffers = 0;
  for (const PlanValue& v : plan.values) buffers += v.home == ValueHome::Arena;
  EXPECT_EQ(buffers, 3u);

  std::mt19937_64 rng(std::random_device{}());
  Tensor xt = random_tensor({4, 6}, rng);
  Tensor got = Executor(std::move(plan)).run({{"x", xt}})[0];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      double row_sum = 0;
      for (int k = 0; k < 6; ++k) row_sum += static_cast<float>(xt.item_as_double(j * 6 + k));
      double expected = std::exp(static_cast<float>(xt.item_as_double(j * 6 + 1 + 2 * i))) + row_sum;
      EXPECT_NEAR(got.item_as_double(i * 4 + j), expected, 1e-4);
    }
}

// A backend with only a relu kernel for f64 that reads contiguous inputs only. With a non-host
// device it stands in for a GPU: its memory is host memory, but the planner cannot know that.
class PartialBackend final : public HostTestBackend {
 public:
  explicit PartialBackend(Device device) : HostTestBackend("partial", device) {
    register_kernel(OpId::relu, relu_kernel, {DType::f64}, /*strided_inputs*/ false);
  }
  // Counted, so that tests see which copies went on a side stream and what waited for them.
  void copy_to_device(void* dst, const void* src, size_t bytes, Stream* stream) override {
    ++(stream ? copies_on_streams : copies_on_default);
    if (stream) log.push_back("copy on stream");
    if (fail_copies) throw std::runtime_error("copy failed after queuing a chunk");
    Backend::copy_to_device(dst, src, bytes, stream);
  }
  std::unique_ptr<Event> record_event(Stream* stream) override {
    log.push_back(stream ? "record on stream" : "record on default");
    return Backend::record_event(stream);
  }
  void deallocate(void* p, size_t bytes) override {
    if (p) log.push_back("free");
    HostTestBackend::deallocate(p, bytes);
  }
  bool fail_copies = false;
  std::vector<std::string> log;
  std::unique_ptr<Stream> create_stream() override {
    ++streams;
    return Backend::create_stream();
  }
  void wait_event(Stream* stream, const Event& event) override {
    ++waits;
    log.push_back(stream ? "wait on stream" : "wait on default");
  }
  int copies_on_streams = 0, copies_on_default = 0, streams = 0, waits = 0;

 private:
  static void relu_kernel(const KernelCall& call) {
    const Tensor& x = call.inputs[0];
    EXPECT_TRUE(x.is_contiguous());
    const double* in = static_cast<const double*>(x.raw_data());
    double* out = static_cast<double*>(call.output.raw_data());
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = in[i] > 0 ? in[i] : 0.0;
  }
};

// x (4, 6) -> permute (view) -> relu (partial, needs contiguous) -> exp (ref)
void check_fallback(Device device, bool expect_copy_transfer) {
  PartialBackend partial(device);
  Backend& ref = backend_registry().reference();
  Graph g;
  Sym x = g.input("x", {{4, 6}, DType::f64});
  Sym out = exp(relu(permute(x, {1, 0})));
  PlanOptions options;
  options.backends = {&partial, &ref};
  Plan plan = plan_graph(g, {out}, options);
  SCOPED_TRACE(plan.to_string());
  bool relu_on_partial = false, exp_on_ref = false, transfer_to_ref = false, contiguous_copy = false;
  for (const PlanStep& s : plan.steps) {
    if (s.kind == StepKind::Kernel && s.op == OpId::relu) relu_on_partial = s.backend == &partial;
    if (s.kind == StepKind::Kernel && s.op == OpId::exp) exp_on_ref = s.backend == &ref;
    if (s.kind == StepKind::Kernel && s.op == OpId::copy) contiguous_copy = true;
    if (s.kind == StepKind::Transfer && s.source == &partial && s.backend == &ref) {
      transfer_to_ref = true;
      EXPECT_EQ(plan.values[s.output].home, expect_copy_transfer ? ValueHome::Arena : ValueHome::Alias);
    }
  }
  EXPECT_TRUE(relu_on_partial);
  EXPECT_TRUE(exp_on_ref);
  EXPECT_TRUE(transfer_to_ref);
  EXPECT_TRUE(contiguous_copy) << "relu on partial reads contiguous inputs only, the permuted view is not";
  EXPECT_EQ(plan.arenas.size(), expect_copy_transfer ? 2u : 1u);

  std::mt19937_64 rng(std::random_device{}());
  Tensor xt = random_tensor({4, 6}, rng, DType::f64);
  Tensor got = Executor(std::move(plan)).run({{"x", xt}})[0];
  ASSERT_EQ(got.shape(), (Shape{6, 4}));
  EXPECT_TRUE(got.device().is_host());
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j)
      EXPECT_DOUBLE_EQ(got.item_as_double(i * 4 + j), std::exp(std::max(0.0, xt.item_as_double(j * 6 + i))));
}

TEST(Planner, OpMissingOnFirstBackendFallsBackWithAnExplicitTransferOnTheSameDevice) {
  check_fallback(Device{}, /*expect_copy_transfer*/ false);
}

TEST(Planner, TransfersBetweenDevicesCopyIntoTheDestinationArena) {
  check_fallback(Device{DeviceType::cuda, 7}, /*expect_copy_transfer*/ true);
}

// Executor::stage copies a device-homed feed on a copy stream ahead of run(); run() fed the same
// tensor waits for that copy instead of copying again, and a different tensor is copied as usual.
TEST(Executor, StagedFeedsAreCopiedAheadOnASideStreamAndUsedOnce) {
  PartialBackend device(Device{DeviceType::cuda, 3});
  Graph g;
  Sym x = g.input("x", {{4, 6}, DType::f64});
  Sym out = relu(x);
  PlanOptions options;
  options.backends = {&device, &backend_registry().reference()};
  Executor ex(plan_graph(g, {out}, options));
  std::mt19937_64 rng(std::random_device{}());
  Tensor a = random_tensor({4, 6}, rng, DType::f64), b = random_tensor({4, 6}, rng, DType::f64);
  auto expect_relu_of = [](const Tensor& got, const Tensor& in) {
    for (int64_t i = 0; i < 24; ++i) ASSERT_EQ(got.item_as_double(i), std::max(0.0, in.item_as_double(i))) << i;
  };

  ex.stage({{"x", a}});
  EXPECT_EQ(ex.staged_count(), 1u);
  EXPECT_EQ(device.copies_on_streams, 1);
  EXPECT_EQ(device.streams, 1);
  expect_relu_of(ex.run({{"x", a}})[0], a);
  EXPECT_EQ(ex.staged_count(), 0u);
  EXPECT_EQ(device.copies_on_default, 0) << "run() copied a feed that was staged";
  EXPECT_GE(device.waits, 2);  // the copy stream on the allocation, the run on the copy

  ex.stage({{"x", b}});  // staged, but the run is fed another tensor: kept for a later run
  expect_relu_of(ex.run({{"x", a}})[0], a);
  EXPECT_EQ(device.copies_on_default, 1);
  EXPECT_EQ(ex.staged_count(), 1u);
  ex.stage({{"x", b}});  // staged again: the newer copy replaces the older
  EXPECT_EQ(ex.staged_count(), 1u);
  expect_relu_of(ex.run({{"x", b}})[0], b);
  EXPECT_EQ(ex.staged_count(), 0u);
  EXPECT_EQ(device.copies_on_streams, 3);
  EXPECT_EQ(device.copies_on_default, 1);
  EXPECT_EQ(device.streams, 1) << "one copy stream per backend, reused";

  // The trainer's order: batch k + 1 is staged before batch k runs, so every run finds its copy.
  std::vector<Tensor> batches;
  for (int k = 0; k < 5; ++k) batches.push_back(random_tensor({4, 6}, rng, DType::f64));
  ex.stage({{"x", batches[0]}});
  for (int k = 0; k < 5; ++k) {
    if (k + 1 < 5) ex.stage({{"x", batches[k + 1]}});
    expect_relu_of(ex.run({{"x", batches[k]}})[0], batches[k]);
  }
  EXPECT_EQ(device.copies_on_default, 1) << "a run copied a batch that was staged ahead";
  EXPECT_EQ(ex.staged_count(), 0u);
  // At most kMaxStaged copies per feed are kept: the oldest go.
  for (int k = 0; k < 4; ++k) ex.stage({{"x", batches[k]}});
  EXPECT_EQ(ex.staged_count(), Executor::kMaxStaged);
  expect_relu_of(ex.run({{"x", batches[0]}})[0], batches[0]);
  EXPECT_EQ(device.copies_on_default, 2);
}

// A copy that fails after queuing part of its chunks on the copy stream: the staged buffer is
// freed (stream-ordered, on the default stream) only after the default stream waits for the copy
// stream, so the copy still in flight never writes into reused memory.
TEST(Executor, AFailedStagedCopyIsWaitedForBeforeItsBufferIsFreed) {
  PartialBackend device(Device{DeviceType::cuda, 3});
  Graph g;
  Sym x = g.input("x", {{4, 6}, DType::f64});
  Sym out = relu(x);
  PlanOptions options;
  options.backends = {&device, &backend_registry().reference()};
  Executor ex(plan_graph(g, {out}, options));
  std::mt19937_64 rng(1);
  Tensor a = random_tensor({4, 6}, rng, DType::f64);
  device.fail_copies = true;
  device.log.clear();
  EXPECT_THROW(ex.stage({{"x", a}}), std::runtime_error);
  EXPECT_EQ(ex.staged_count(), 0u);
  auto at = [&](const std::string& what, size_t from = 0) {
    for (size_t i = from; i < device.log.size(); ++i)
      if (device.log[i] == what) return i;
    return device.log.size();
  };
  const size_t copy = at("copy on stream"), recorded = at("record on stream", copy), waited = at("wait on default", recorded),
               freed = at("free", copy);
  ASSERT_LT(copy, device.log.size()) << fmt::format("{}", fmt::join(device.log, ", "));
  EXPECT_LT(recorded, waited) << fmt::format("{}", fmt::join(device.log, ", "));
  EXPECT_LT(waited, freed) << "the buffer was freed before the default stream waited for the copy: "
                           << fmt::format("{}", fmt::join(device.log, ", "));
  EXPECT_LT(freed, device.log.size()) << "the buffer was never freed";
}

TEST(Planner, DeadNodesAreNotPlanned) {
  Graph g;
  Sym x = g.input("x", {{5}, DType::f32});
  Sym unused = g.input("unused", {{3}, DType::f32});
  exp(unused);
  Sym y = neg(x);
  Plan plan = plan_graph(g, {y});
  for (const PlanValue& v : plan.values) EXPECT_NE(v.name, "unused");
  int kernels = 0;
  for (const PlanStep& s : plan.steps) kernels += s.kind == StepKind::Kernel;
  EXPECT_EQ(kernels, 1);
}

TEST(PlanCache, OnePlanPerInputSignature) {
  int builds = 0;
  CompiledGraph step({"x"}, [&](Graph& g, const std::vector<Sym>& in) {
    ++builds;
    Sym w = g.param("w", {{4, 3}, DType::f32});
    return std::vector<Sym>{relu(matmul(in[0], w))};
  });
  std::mt19937_64 rng(std::random_device{}());
  Tensor w = random_tensor({4, 3}, rng);
  Tensor full = random_tensor({8, 4}, rng), full2 = random_tensor({8, 4}, rng), last = random_tensor({3, 4}, rng);
  EXPECT_EQ(step.run({full}, {{"w", w}})[0].shape(), (Shape{8, 3}));
  EXPECT_EQ(step.run({full2}, {{"w", w}})[0].shape(), (Shape{8, 3}));
  EXPECT_EQ(step.cache_size(), 1u);
  EXPECT_EQ(builds, 1);
  Tensor y = step.run({last}, {{"w", w}})[0];
  EXPECT_EQ(step.cache_size(), 2u);
  EXPECT_EQ(builds, 2);
  ASSERT_EQ(y.shape(), (Shape{3, 3}));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double acc = 0;
      for (int k = 0; k < 4; ++k) acc += last.item_as_double(i * 4 + k) * w.item_as_double(k * 3 + j);
      EXPECT_NEAR(y.item_as_double(i * 3 + j), std::max(0.0, acc), 1e-5);
    }
  step.run({full}, {{"w", w}});
  EXPECT_EQ(step.cache_size(), 2u);
  EXPECT_EQ(builds, 2);
}

}  // namespace
}  // namespace gpuml
