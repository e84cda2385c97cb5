// Executor run options: outputs written into caller buffers, and per-run random offsets; errors
// that device kernels defer to the end of a run; outputs handed over as soon as they are written.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>

#include "backend/dispatch.h"
#include "graph/executor.h"
#include "graph_test_util.h"
#include "host_test_backend.h"

namespace gpuml {
namespace {

using testing::random_tensor;

TEST(ExecutorOptions, DonatedOutputBufferGetsTheSameNumbersWithoutTheArena) {
  std::mt19937_64 rng(std::random_device{}());
  Graph g;
  Sym x = g.input("x", {{5, 7}, DType::f32});
  Sym w = g.input("w", {{7, 3}, DType::f32});
  Sym y = relu(matmul(x, w));
  Sym s = sum(y);
  Executor ex(plan_graph(g, {y, s}));
  std::map<std::string, Tensor> feeds{{"x", random_tensor({5, 7}, rng)}, {"w", random_tensor({7, 3}, rng)}};
  std::vector<Tensor> plain = ex.run(feeds);
  Tensor buffer = Tensor::empty({5, 3}, DType::f32);
  RunOptions options;
  options.output_buffers[0] = buffer;
  std::vector<Tensor> donated = ex.run(feeds, options);
  EXPECT_EQ(donated[0].raw_data(), buffer.raw_data());  // written in place, not copied out
  EXPECT_EQ(donated[0].to_doubles(), plain[0].to_doubles());
  EXPECT_EQ(donated[1].to_doubles(), plain[1].to_doubles());  // consumers read the buffer
  // The next plain run still works from the arena.
  EXPECT_EQ(ex.run(feeds)[0].to_doubles(), plain[0].to_doubles());
}

TEST(ExecutorOptions, DonatedBufferErrors) {
  Graph g;
  Sym x = g.input("x", {{4}, DType::f32});
  Sym y = exp(x);
  Executor ex(plan_graph(g, {y}));
  Tensor xin = Tensor::from_values({4}, {0.5, 1, 2, 3}, DType::f32);
  RunOptions wrong_shape;
  wrong_shape.output_buffers[0] = Tensor::empty({5}, DType::f32);
  EXPECT_THROW(ex.run({{"x", xin}}, wrong_shape), Error);
  RunOptions aliased;
  aliased.output_buffers[0] = xin;
  EXPECT_THROW(ex.run({{"x", xin}}, aliased), Error);
  RunOptions bad_index;
  bad_index.output_buffers[3] = Tensor::empty({4}, DType::f32);
  EXPECT_THROW(ex.run({{"x", xin}}, bad_index), Error);
}

TEST(ExecutorOptions, RngOffsetShiftsEveryRandomOp) {
  Graph g;
  Sym x = g.input("x", {{64}, DType::f32});
  Sym y = dropout(x, 0.5, /*seed*/ 11, /*offset*/ 0);
  Executor ex(plan_graph(g, {y}));
  std::mt19937_64 rng(std::random_device{}());
  Tensor xin = random_tensor({64}, rng);
  std::vector<double> a = ex.run({{"x", xin}})[0].to_doubles();
  RunOptions shifted;
  shifted.rng_offset = 16;  // 16 Philox blocks = 64 numbers further on
  std::vector<double> b = ex.run({{"x", xin}}, shifted)[0].to_doubles();
  EXPECT_NE(a, b);
  // The same draw as a graph whose dropout starts at offset 16.
  Graph g2;
  Sym x2 = g2.input("x", {{64}, DType::f32});
  Executor ex2(plan_graph(g2, {dropout(x2, 0.5, 11, 16)}));
  EXPECT_EQ(ex2.run({{"x", xin}})[0].to_doubles(), b);
}

}  // namespace
}  // namespace gpuml

namespace gpuml {
namespace {

// A host backend whose relu kernel, like the CUDA kernels, does not throw on bad input but
// records it (here: a negative input) for check_deferred_errors.
class DeferringBackend final : public HostTestBackend {
 public:
  DeferringBackend() : HostTestBackend("deferring") { register_kernel(OpId::relu, relu_kernel, {DType::f64}); }
  void check_deferred_errors() override {
    int64_t found = std::exchange(bad_, -1);
    GPUML_CHECK(found < 0, "relu: negative input at position {}", found);
  }
  static inline int64_t bad_ = -1;

 private:
  static void relu_kernel(const KernelCall& call) {
    const double* in = call.inputs[0].data<double>();
    double* out = call.output.data<double>();
    for (int64_t i = 0; i < call.output.numel(); ++i) {
      if (in[i] < 0 && bad_ < 0) bad_ = i;
      out[i] = in[i] > 0 ? in[i] : 0.0;
    }
  }
};

TEST(ExecutorOptions, DeferredDeviceErrorsAreRaisedByRunAndLeaveDonatedBuffersAlone) {
  DeferringBackend backend;
  Graph g;
  Sym x = g.input("x", {{4}, DType::f64});
  PlanOptions options;
  options.backends = {&backend, &backend_registry().reference()};
  Executor ex(plan_graph(g, {exp(relu(x))}, options));
  Tensor good = Tensor::from_values({4}, {1, 2, 3, 4}, DType::f64);
  Tensor bad = Tensor::from_values({4}, {1, 2, -3, 4}, DType::f64);
  Tensor donated = Tensor::from_values({4}, {7, 7, 7, 7}, DType::f64);
  RunOptions into;
  into.output_buffers[0] = donated;
  try {
    ex.run({{"x", bad}}, into);
    ADD_FAILURE() << "a deferred error must make run() throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("negative input at position 2"), std::string::npos) << e.what();
  }
  // Nothing stays pending, and the next run (without the buffer) neither fails nor writes it.
  const std::vector<double> after_failure = donated.to_doubles();
  std::vector<Tensor> out = ex.run({{"x", good}});
  EXPECT_NEAR(out[0].item_as_double(3), std::exp(4.0), 1e-12);
  EXPECT_EQ(donated.to_doubles(), after_failure);
  // A run that fails for another reason (a bad label, found by ref on the host) after a deferred
  // error was recorded: that error is dropped with the run, not reported by the next one.
  Graph g2;
  Sym logits = g2.input("logits", {{1, 4}, DType::f64});
  Sym labels = g2.input("labels", {{1}, DType::i64});
  Executor ce(plan_graph(g2, {cross_entropy(relu(logits), labels)}, options));
  Tensor bad_logits = Tensor::from_values({1, 4}, {1, 2, -3, 4}, DType::f64);
  Tensor good_logits = Tensor::from_values({1, 4}, {1, 2, 3, 4}, DType::f64);
  Tensor bad_label = Tensor::from_values({1}, {9}, DType::i64), good_label = Tensor::from_values({1}, {1}, DType::i64);
  EXPECT_THROW(ce.run({{"logits", bad_logits}, {"labels", bad_label}}), Error);
  EXPECT_NO_THROW(ce.run({{"logits", good_logits}, {"labels", good_label}}));
  // run_op raises them too.
  EXPECT_THROW(run_op(backend, OpId::relu, {bad}), Error);
  EXPECT_NO_THROW(run_op(backend, OpId::relu, {good}));
}


// An early output is handed to on_output_ready before the later steps run: the last output's
// donated buffer, written by the last kernel, still holds its sentinel when the first arrives.
TEST(ExecutorOptions, ReadyOutputsArriveBeforeTheStepsAfterThemRun) {
  std::mt19937_64 rng(std::random_device{}());
  Graph g;
  Sym x = g.input("x", {{4, 6}, DType::f32});
  Sym w = g.input("w", {{6, 5}, DType::f32});
  Sym early = relu(x);                        // (4, 6)
  Sym viewed = reshape(early, {24});          // a view of it: ready with it
  Sym late = relu(matmul(exp(early), w));     // (4, 5), the last kernels
  Executor ex(plan_graph(g, {early, late, viewed}));
  std::map<std::string, Tensor> feeds{{"x", random_tensor({4, 6}, rng)}, {"w", random_tensor({6, 5}, rng)}};
  const std::vector<Tensor> plain = ex.run(feeds);
  Tensor late_buffer = Tensor::empty({4, 5}, DType::f32);
  for (int64_t i = 0; i < 20; ++i) late_buffer.data<float>()[i] = NAN;
  RunOptions options;
  options.output_buffers[1] = late_buffer;
  options.ready_outputs = {0, 2};
  std::vector<std::pair<int, std::vector<double>>> arrived;
  bool late_written_before = false;
  options.on_output_ready = [&](int index, const Tensor& value) {
    arrived.emplace_back(index, value.to_doubles());
    for (int64_t i = 0; i < 20; ++i) late_written_before |= !std::isnan(late_buffer.data<float>()[i]);
  };
  std::vector<Tensor> out = ex.run(feeds, options);
  ASSERT_EQ(arrived.size(), 2u);
  EXPECT_FALSE(late_written_before) << "an output arrived only after the later steps had run";
  std::map<int, std::vector<double>> by_index(arrived.begin(), arrived.end());
  EXPECT_EQ(by_index[0], plain[0].to_doubles());
  EXPECT_EQ(by_index[2], plain[2].to_doubles());
  EXPECT_FALSE(out[0].defined());  // handed over, not copied out
  EXPECT_FALSE(out[2].defined());
  EXPECT_EQ(out[1].to_doubles(), plain[1].to_doubles());
  // A callback that throws ends the run with its error; the next run works.
  options.on_output_ready = [](int, const Tensor&) { GPUML_FAIL(ErrorKind::Io, "peer went away"); };
  EXPECT_THROW(ex.run(feeds, options), Error);
  EXPECT_EQ(ex.run(feeds)[1].to_doubles(), plain[1].to_doubles());
  options.on_output_ready = nullptr;
  EXPECT_THROW(ex.run(feeds, options), Error);  // ready_outputs without a callback
}

}  // namespace
}  // namespace gpuml
