// Captured work and its replay (RunOptions::replay, the executor side of CUDA graphs), checked on
// the CPU with a host backend that captures as a CUDA graph does: kernels enqueued while
// capturing are recorded with their memory and attributes frozen, and run only on replay. Replayed
// training must give bitwise the numbers of eager training, dropout masks included (the random
// offset is read from a slot when the kernel runs).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <random>
#include <utility>

#include "backend/dispatch.h"
#include "graph/executor.h"
#include "graph_test_util.h"
#include "host_test_backend.h"
#include "nn/model.h"
#include "train/model_runner.h"

namespace gpuml {
namespace {

// The cpu backend's kernels, run through slots that record instead while capturing.
class CapturingBackend final : public HostTestBackend {
 public:
  // `missing`: an op left out (to make plans that need a second backend).
  explicit CapturingBackend(std::string name, OpId missing = static_cast<OpId>(kNumOps - 1), bool leave_out = false)
      : HostTestBackend(std::move(name)), cpu_(backend_registry().get("cpu")) {
    register_all(std::make_integer_sequence<int, kNumOps>{}, leave_out ? static_cast<int>(missing) : -1);
  }

  bool can_capture() const override { return true; }
  void begin_capture() override {
    ASSERT_FALSE(capturing_);
    capturing_ = true;
    recorded_.clear();
  }
  std::unique_ptr<CapturedWork> end_capture() override {
    capturing_ = false;
    return std::make_unique<Recording>(*this, std::move(recorded_));
  }
  void abort_capture() noexcept override {
    capturing_ = false;
    recorded_.clear();
    ++aborts;
  }

  std::optional<OpId> refuse_to_capture;  // this op throws while capturing, like a syncing kernel
  int64_t aborts = 0;
  int64_t kernels_run = 0;  // eager or replayed

 private:
  struct Call {
    OpId op;
    std::vector<Tensor> inputs;
    Tensor output;
    Attrs attrs;
    const void* offset_slot;
    std::vector<Tensor> extra_outputs;  // matmul_bgrad's bias gradient
  };
  struct Recording final : CapturedWork {
    Recording(CapturingBackend& b, std::vector<Call> c) : backend(b), calls(std::move(c)) {}
    void replay() override {
      for (const Call& c : calls) backend.run_on_cpu(c);
    }
    CapturingBackend& backend;
    std::vector<Call> calls;
  };

  void run_on_cpu(const Call& c) {
    ++kernels_run;
    cpu_.run(c.op, KernelCall{cpu_, c.inputs, c.output, c.attrs, nullptr, c.offset_slot, c.extra_outputs});
  }
  template <int I>
  static void slot(const KernelCall& call) {
    auto& self = static_cast<CapturingBackend&>(call.backend);
    Call c{static_cast<OpId>(I), {call.inputs.begin(), call.inputs.end()}, call.output, call.attrs, call.offset_slot,
           {call.extra_outputs.begin(), call.extra_outputs.end()}};
    if (!self.capturing_) return self.run_on_cpu(c);
    GPUML_CHECK_KIND(ErrorKind::Unsupported, self.refuse_to_capture != c.op, "{} cannot be captured",
                     op_name(c.op));
    self.recorded_.push_back(std::move(c));
  }
  template <int... I>
  void register_all(std::integer_sequence<int, I...>, int skip) {
    (register_op<I>(skip), ...);
  }
  template <int I>
  void register_op(int skip) {
    const OpId op = static_cast<OpId>(I);
    if (I == skip) return;
    for (DType d : cpu_.supported_dtypes(op)) register_kernel(op, &slot<I>, {d}, cpu_.accepts_strided_inputs(op));
  }

  Backend& cpu_;
  bool capturing_ = false;
  std::vector<Call> recorded_;
};

using testing::random_tensor;

Tensor random_labels(int64_t n, int64_t classes, std::mt19937_64& rng) {
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = static_cast<double>(rng() % static_cast<uint64_t>(classes));
  return Tensor::from_values({n}, v, DType::i64);
}

nn::Model mlp_with_dropout() {
  return nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [12], "layers": [
      {"type": "Linear", "in_features": 12, "out_features": 16}, {"type": "ReLU"},
      {"type": "Dropout", "p": 0.3},
      {"type": "Linear", "in_features": 16, "out_features": 16}, {"type": "GELU"},
      {"type": "Dropout", "p": 0.2},
      {"type": "Linear", "in_features": 16, "out_features": 4}]})"));
}

TEST(ExecutorReplay, ReplayedTrainingMatchesEagerTrainingBitwise) {
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  nn::Model model = mlp_with_dropout();
  optim::OptimizerConfig adam;
  adam.kind = "adam";
  CapturingBackend capturing("capturing");
  Backend& cpu = backend_registry().get("cpu");
  ModelRunner eager(model, adam, PlanOptions{{&cpu}}, seed);
  ModelRunner replayed(model, adam, PlanOptions{{&capturing}}, seed);
  replayed.set_replay(true);
  const int steps = 7;
  for (int step = 1; step <= steps; ++step) {
    SCOPED_TRACE(step);
    Tensor x = random_tensor({10, 12}, rng), y = random_labels(10, 4, rng);
    const double lr = 0.01 * step;
    const uint64_t offset = rng() % 100000;  // a new dropout mask every step
    StepStats a = eager.train_step(x, y, lr, step, offset);
    StepStats b = replayed.train_step(x, y, lr, step, offset);
    ASSERT_EQ(a.loss, b.loss);
    ASSERT_EQ(a.score, b.score);
    ASSERT_EQ(eager.state_snapshot().to_doubles(), replayed.state_snapshot().to_doubles());
  }
  std::string note;
  ReplayStats stats = replayed.replay_stats(&note);
  EXPECT_EQ(note, "");
  // Step 1 warms up; steps 2 and 3 capture one step per state buffer; the rest replay.
  EXPECT_EQ(stats.eager, 1);
  EXPECT_EQ(stats.captures, 2);
  EXPECT_EQ(stats.replays, steps - 1);
  // Evaluation replays too, and agrees.
  Tensor tx = random_tensor({30, 12}, rng), ty = random_labels(30, 4, rng);
  for (int pass = 0; pass < 3; ++pass) {
    TaskSums a = eager.evaluate(tx, ty, 10), b = replayed.evaluate(tx, ty, 10);
    EXPECT_EQ(a.loss_sum, b.loss_sum);
    EXPECT_EQ(a.score, b.score);
  }
  EXPECT_EQ(replayed.replay_stats().captures, 3);
  EXPECT_EQ(eager.replay_stats().captures, 0);  // cpu cannot capture
}

TEST(ExecutorReplay, AnErrorInAReplayedStepIsRaisedAndTrainingGoesOn) {
  std::mt19937_64 rng(std::random_device{}());
  nn::Model model = mlp_with_dropout();
  optim::OptimizerConfig sgd;
  sgd.kind = "sgd";
  sgd.momentum = 0.9;
  CapturingBackend capturing("capturing");
  ModelRunner eager(model, sgd, PlanOptions{{&backend_registry().get("cpu")}}, 5);
  ModelRunner replayed(model, sgd, PlanOptions{{&capturing}}, 5);
  replayed.set_replay(true);
  for (int step = 1; step <= 6; ++step) {
    SCOPED_TRACE(step);
    Tensor x = random_tensor({8, 12}, rng), y = random_labels(8, 4, rng);
    if (step == 4) {  // a label out of range, found by the replayed loss kernel
      Tensor bad = Tensor::from_values({8}, {0, 1, 2, 3, 9, 0, 1, 2}, DType::i64);
      EXPECT_THROW(eager.train_step(x, bad, 0.1, step, step), Error);
      try {
        replayed.train_step(x, bad, 0.1, step, step);
        ADD_FAILURE() << "the bad label was not reported";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("label 9"), std::string::npos) << e.what();
      }
    }
    StepStats a = eager.train_step(x, y, 0.1, step, step), b = replayed.train_step(x, y, 0.1, step, step);
    ASSERT_EQ(a.loss, b.loss);
    ASSERT_EQ(eager.state_snapshot().to_doubles(), replayed.state_snapshot().to_doubles());
  }
  EXPECT_EQ(replayed.replay_stats().captures, 2);
}

TEST(ExecutorReplay, AKernelThatCannotBeCapturedMakesThePlanEager) {
  std::mt19937_64 rng(std::random_device{}());
  nn::Model model = mlp_with_dropout();
  optim::OptimizerConfig adam;
  adam.kind = "adam";
  CapturingBackend capturing("capturing");
  capturing.refuse_to_capture = OpId::dropout;
  ModelRunner eager(model, adam, PlanOptions{{&backend_registry().get("cpu")}}, 9);
  ModelRunner replayed(model, adam, PlanOptions{{&capturing}}, 9);
  replayed.set_replay(true);
  for (int step = 1; step <= 4; ++step) {
    Tensor x = random_tensor({6, 12}, rng), y = random_labels(6, 4, rng);
    StepStats a = eager.train_step(x, y, 0.01, step, 77 * step), b = replayed.train_step(x, y, 0.01, step, 77 * step);
    ASSERT_EQ(a.loss, b.loss) << "step " << step;  // the failed capture was redone eagerly
  }
  EXPECT_EQ(eager.state_snapshot().to_doubles(), replayed.state_snapshot().to_doubles());
  std::string note;
  ReplayStats stats = replayed.replay_stats(&note);
  EXPECT_EQ(stats.captures, 0);
  EXPECT_EQ(stats.eager, 4);
  EXPECT_EQ(capturing.aborts, 1);  // tried once, then never again
  EXPECT_NE(note.find("capture failed: dropout cannot be captured"), std::string::npos) << note;
}

TEST(ExecutorReplay, PlansThatDoNotSuitReplayRunEagerlyAndSayWhy) {
  Graph g;
  Sym x = g.input("x", {{3, 4}, DType::f32});
  Sym y = exp(relu(x));
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, Tensor> feeds{{"x", random_tensor({3, 4}, rng)}};
  RunOptions replay;
  replay.replay = true;

  Executor on_cpu(plan_graph(g, {y}, PlanOptions{{&backend_registry().get("cpu")}}));
  EXPECT_EQ(on_cpu.replay_note(), "backend cpu cannot capture work for replay");
  CapturingBackend no_relu("no_relu", OpId::relu, true), full("full");
  Executor split(plan_graph(g, {y}, PlanOptions{{&no_relu, &full}}));
  EXPECT_EQ(split.replay_note(), "the plan runs kernels on more than one backend");
  Graph views;
  Sym v = views.input("v", {{3, 4}, DType::f32});
  Executor only_views(plan_graph(views, {reshape(v, {4, 3})}, PlanOptions{{&full}}));
  EXPECT_EQ(only_views.replay_note(), "the plan runs no kernel");

  const std::vector<double> expected = on_cpu.run(feeds)[0].to_doubles();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(on_cpu.run(feeds, replay)[0].to_doubles(), expected);
    EXPECT_EQ(split.run(feeds, replay)[0].to_doubles(), expected);
  }
  EXPECT_EQ(on_cpu.replay_stats().replays + split.replay_stats().replays, 0);
  EXPECT_EQ(only_views.run({{"v", feeds["x"]}}, replay)[0].to_doubles(), feeds["x"].to_doubles());
}

TEST(ExecutorReplay, EachSetOfBuffersGetsItsOwnCaptureUpToALimit) {
  std::mt19937_64 rng(std::random_device{}());
  Graph g;
  Sym x = g.input("x", {{4, 5}, DType::f32});
  Sym y = mul(relu(x), x);
  Sym t = reshape(y, {5, 4});  // an output that is a view of the donated buffer
  CapturingBackend capturing("capturing");
  Executor ex(plan_graph(g, {y, t}, PlanOptions{{&capturing}}));
  const size_t buffers = Executor::kMaxCaptures + 2;
  std::vector<Tensor> out(buffers);
  for (Tensor& b : out) b = Tensor::empty({4, 5}, DType::f32);
  for (size_t run = 0; run < 2 * buffers; ++run) {
    SCOPED_TRACE(run);
    Tensor xv = random_tensor({4, 5}, rng);
    std::vector<double> expect = xv.to_doubles();
    for (double& e : expect) e = static_cast<double>(static_cast<float>(e > 0 ? e * e : 0.0 * e));
    RunOptions options;
    options.replay = true;
    options.output_buffers[0] = out[run % buffers];
    std::vector<Tensor> got = ex.run({{"x", xv}}, options);
    ASSERT_EQ(got[0].raw_data(), out[run % buffers].raw_data());
    ASSERT_EQ(got[0].to_doubles(), expect);  // the new feed, not the captured one
    ASSERT_EQ(got[1].to_doubles(), expect);
  }
  // Run 0 warms up (buffer 0 gets no capture then); buffers 1..4 are captured; buffer 5, and
  // buffer 0 when it comes back, are past the limit and run eagerly every time.
  const ReplayStats& s = ex.replay_stats();
  EXPECT_EQ(s.captures, static_cast<int64_t>(Executor::kMaxCaptures));
  EXPECT_EQ(s.replays, 2 * static_cast<int64_t>(Executor::kMaxCaptures));
  EXPECT_EQ(s.eager, 1 + 3);
}

}  // namespace
}  // namespace gpuml
