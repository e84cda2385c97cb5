// The planner's fusion of matmul + bias add [+ relu/gelu] into one matmul_bias_act step: where it
// fuses, where it must not, and that fused plans compute what unfused plans compute, forward and
// backward, on fresh random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "graph_test_util.h"
#include "host_test_backend.h"

namespace gpuml {
namespace {

using testing::random_tensor;

int count_steps(const Plan& plan, OpId op) {
  return static_cast<int>(std::count_if(plan.steps.begin(), plan.steps.end(), [&](const PlanStep& s) {
    return s.kind == StepKind::Kernel && s.op == op;
  }));
}

std::vector<const PlanStep*> fused_steps(const Plan& plan) {
  std::vector<const PlanStep*> out;
  for (const PlanStep& s : plan.steps)
    if (s.kind == StepKind::Kernel && s.op == OpId::matmul_bias_act) out.push_back(&s);
  return out;
}

// The most bytes of arena buffers live at any one step: what any packing needs at least. Fusion
// must not raise it; the planner's packing (peak_bytes) sits at or above it.
size_t live_bytes_bound(const Plan& plan) {
  size_t most = 0;
  for (int s = 0; s < static_cast<int>(plan.steps.size()); ++s) {
    size_t live = 0;
    for (const PlanValue& v : plan.values)
      if (v.home == ValueHome::Arena && v.first_step <= s && s <= v.last_step) live += v.bytes;
    most = std::max(most, live);
  }
  return most;
}

PlanOptions unfused() {
  PlanOptions o;
  o.fuse = false;
  return o;
}

// Three layers as nn::Linear builds them (weight (out, in), trans_b): relu, tanh-gelu, none.
struct ThreeLayers {
  Graph g;
  Sym x, w1, b1, w2, b2, w3, b3, h1, h2, y;
  explicit ThreeLayers(DType dtype, Autocast autocast = Autocast::off) {
    g.set_autocast(autocast);
    x = g.input("x", {{12, 16}, dtype});
    w1 = g.param("w1", {{32, 16}, dtype});
    b1 = g.param("b1", {{32}, dtype});
    w2 = g.param("w2", {{24, 32}, dtype});
    b2 = g.param("b2", {{24}, dtype});
    w3 = g.param("w3", {{10, 24}, dtype});
    b3 = g.param("b3", {{10}, dtype});
    h1 = relu(add(matmul(x, w1, false, true), b1));
    h2 = gelu(add(matmul(h1, w2, false, true), b2), /*tanh*/ true);
    y = add(matmul(h2, w3, false, true), b3);
  }
  std::map<std::string, Tensor> feeds(std::mt19937_64& rng, DType dtype) const {
    std::map<std::string, Tensor> f;
    for (const char* name : {"x", "w1", "b1", "w2", "b2", "w3", "b3"})
      f[name] = random_tensor(g.type_of(g.find_leaf(name)).shape, rng, dtype);
    return f;
  }
};

void expect_close(const std::vector<Tensor>& got, const std::vector<Tensor>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << "output " << i;
    std::vector<double> a = got[i].to_doubles(), b = want[i].to_doubles();
    for (size_t j = 0; j < a.size(); ++j)
      ASSERT_NEAR(a[j], b[j], tol * (1 + std::fabs(b[j]))) << "output " << i << " element " << j;
  }
}

// A backward fusion whose cpu kernel runs the unfused kernels: f32 bitwise equal to the unfused
// plan (cpu), f64 to 1e-12 (ref computes the fused op in one rounding).
void expect_same_as_unfused(Plan fused, Plan separate, const std::map<std::string, Tensor>& feeds, DType dtype) {
  Executor a(std::move(fused)), c(std::move(separate));
  std::vector<Tensor> got = a.run(feeds), want = c.run(feeds);
  if (dtype == DType::f32) {
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].to_doubles(), want[i].to_doubles()) << i;
  } else {
    expect_close(got, want, 1e-12);
  }
}

// The fused and the unfused plan of `m`, run on three fresh sets of its feeds, agree within tol.
void expect_plans_agree(Plan fused, Plan separate, const ThreeLayers& m, DType dtype, double tol) {
  std::mt19937_64 rng(std::random_device{}());
  Executor a(std::move(fused)), b(std::move(separate));
  for (int run = 0; run < 3; ++run) {
    auto feeds = m.feeds(rng, dtype);
    expect_close(a.run(feeds), b.run(feeds), tol);
  }
}

TEST(Fusion, EachLinearLayerOfAForwardPassBecomesOneStep) {
  ThreeLayers m(DType::f32);
  Plan fused = plan_graph(m.g, {m.y});
  SCOPED_TRACE(fused.to_string());
  std::vector<const PlanStep*> steps = fused_steps(fused);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0]->attrs.activation, Activation::relu);
  EXPECT_EQ(steps[1]->attrs.activation, Activation::gelu);
  EXPECT_TRUE(steps[1]->attrs.gelu_tanh);
  EXPECT_EQ(steps[2]->attrs.activation, Activation::none);
  for (const PlanStep* s : steps) EXPECT_TRUE(s->attrs.trans_b);
  EXPECT_EQ(fused.steps.size(), 3u) << "nothing but the three fused steps";

  Plan separate = plan_graph(m.g, {m.y}, unfused());
  EXPECT_EQ(count_steps(separate, OpId::matmul_bias_act), 0);
  EXPECT_EQ(count_steps(separate, OpId::matmul), 3);
  EXPECT_LT(fused.peak_bytes(), separate.peak_bytes());
  expect_plans_agree(std::move(fused), std::move(separate), m, DType::f32, 1e-5);
}

// Training: relu's backward reads relu's output, so relu fuses; gelu's backward reads gelu's
// input (the sum), so only the bias fuses into that layer and gelu stays a step of its own. In
// the backward, weight and bias gradients pair (BGRAD) and the gradients reaching the two
// activations meet their derivatives in the product (DRELU/DGELU).
TEST(Fusion, TrainingFusesOnlyWhatBackwardDoesNotRead) {
  ThreeLayers m(DType::f64);
  Sym loss = mean(mul(tanh(m.y), m.y));
  std::vector<Sym> outputs{loss};
  for (Sym s : gradients(m.g, loss, {m.x, m.w1, m.b1, m.w2, m.b2, m.w3, m.b3})) outputs.push_back(s);
  Plan fused = plan_graph(m.g, outputs);
  SCOPED_TRACE(fused.to_string());
  std::vector<const PlanStep*> steps = fused_steps(fused);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0]->attrs.activation, Activation::relu);
  EXPECT_EQ(steps[1]->attrs.activation, Activation::none);
  EXPECT_EQ(steps[2]->attrs.activation, Activation::none);
  EXPECT_EQ(count_steps(fused, OpId::gelu), 1);
  EXPECT_EQ(count_steps(fused, OpId::relu), 0);
  // The gradients reaching gelu and relu (g3 w3, g2 w2) meet their backward in the product.
  EXPECT_EQ(count_steps(fused, OpId::matmul_dact), 2);
  EXPECT_EQ(count_steps(fused, OpId::gelu_backward), 0);
  EXPECT_EQ(count_steps(fused, OpId::relu_backward), 0);
  // Each layer's weight and bias gradients: one matmul_bgrad instead of a matmul and a sum.
  EXPECT_EQ(count_steps(fused, OpId::matmul_bgrad), 3);

  Plan separate = plan_graph(m.g, outputs, unfused());
  EXPECT_EQ(count_steps(separate, OpId::sum) - count_steps(fused, OpId::sum), 3);
  // 3 forward, 3 dW, 2 input gradients in matmul_dact; x's gradient g1 w1 stays a matmul.
  EXPECT_EQ(count_steps(separate, OpId::matmul) - count_steps(fused, OpId::matmul), 3 + 3 + 2);
  EXPECT_EQ(count_steps(fused, OpId::matmul), 1);
  EXPECT_LT(fused.unshared_bytes(), separate.unshared_bytes());
  EXPECT_LE(live_bytes_bound(fused), live_bytes_bound(separate));
  EXPECT_LE(fused.peak_bytes(), separate.peak_bytes());
  expect_plans_agree(std::move(fused), std::move(separate), m, DType::f64, 1e-12);
}

TEST(Fusion, Bf16AutocastFusesTheCastBias) {
  ThreeLayers m(DType::f32, Autocast::bf16);
  Sym out = cast(m.y, DType::f32);
  Plan fused = plan_graph(m.g, {out});
  SCOPED_TRACE(fused.to_string());
  std::vector<const PlanStep*> steps = fused_steps(fused);
  ASSERT_EQ(steps.size(), 3u);
  for (const PlanStep* s : steps) EXPECT_EQ(fused.values[s->output].type.dtype, DType::bf16);
  std::mt19937_64 rng(std::random_device{}());
  Executor a(std::move(fused)), b(plan_graph(m.g, {out}, unfused()));
  // The fused step rounds to bf16 once where the unfused steps round three times, so the two
  // differ by bf16 rounding: compared as relative RMS over the whole output.
  for (int run = 0; run < 3; ++run) {
    auto feeds = m.feeds(rng, DType::f32);
    std::vector<double> got = a.run(feeds)[0].to_doubles(), want = b.run(feeds)[0].to_doubles();
    double err = 0, norm = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      err += (got[i] - want[i]) * (got[i] - want[i]);
      norm += want[i] * want[i];
    }
    EXPECT_LT(std::sqrt(err / norm), 2e-2);
  }
}

TEST(Fusion, NotWhereAnIntermediateIsReadElsewhereOrTheShapesDoNotFit) {
  Graph g;
  Sym x = g.input("x", {{6, 8}, DType::f32});
  Sym w = g.param("w", {{8, 5}, DType::f32});
  Sym b = g.param("b", {{5}, DType::f32});
  Sym row = g.param("row", {{1, 5}, DType::f32});
  Sym x3 = g.input("x3", {{2, 6, 8}, DType::f32});

  Sym product = matmul(x, w);
  Sym summed = add(product, b);
  // The product is an output: it must exist, so nothing fuses.
  EXPECT_EQ(count_steps(plan_graph(g, {relu(summed), product}), OpId::matmul_bias_act), 0);
  // The sum is an output: the bias fuses, the relu stays.
  Plan keep_sum = plan_graph(g, {relu(summed), summed});
  ASSERT_EQ(fused_steps(keep_sum).size(), 1u) << keep_sum.to_string();
  EXPECT_EQ(fused_steps(keep_sum)[0]->attrs.activation, Activation::none);
  EXPECT_EQ(count_steps(keep_sum, OpId::relu), 1);
  // A (1, N) bias is a broadcast add, not a bias vector.
  EXPECT_EQ(count_steps(plan_graph(g, {add(matmul(x, w), row)}), OpId::matmul_bias_act), 0);
  // A batched matmul stays a matmul.
  EXPECT_EQ(count_steps(plan_graph(g, {add(matmul(x3, w), b)}), OpId::matmul_bias_act), 0);
  // A bias that broadcasts the product to a bigger shape is not a bias.
  Sym wide = g.param("wide", {{3, 6, 5}, DType::f32});
  EXPECT_EQ(count_steps(plan_graph(g, {add(matmul(x, w), wide)}), OpId::matmul_bias_act), 0);
  // Either operand order of the add is a bias add.
  EXPECT_EQ(count_steps(plan_graph(g, {relu(add(b, matmul(x, w)))}), OpId::matmul_bias_act), 1);
}

// A conv layer as nn::Conv2d builds it (bias reshaped to (1, O, 1, 1)) then relu, a second one
// without activation, in training: both fuse, and the gradients match the unfused plan's.
TEST(Fusion, ConvLayersFuseTheirChannelBiasAndRelu) {
  Graph g;
  Sym x = g.input("x", {{2, 3, 9, 8}, DType::f32});
  Sym w1 = g.param("w1", {{5, 3, 3, 3}, DType::f32});
  Sym b1 = g.param("b1", {{5}, DType::f32});
  Sym w2 = g.param("w2", {{4, 5, 3, 3}, DType::f32});
  Sym b2 = g.param("b2", {{4}, DType::f32});
  Attrs same;
  same.padding = {1, 1};
  Sym h = relu(add(conv2d(x, w1, same), reshape(b1, {1, 5, 1, 1})));
  Sym y = add(conv2d(h, w2, Attrs{}), reshape(b2, {4, 1, 1}));
  Sym loss = mean(mul(tanh(y), y));
  std::vector<Sym> outputs{loss};
  for (Sym s : gradients(g, loss, {w1, b1, w2, b2})) outputs.push_back(s);
  Plan fused = plan_graph(g, outputs);
  SCOPED_TRACE(fused.to_string());
  ASSERT_EQ(count_steps(fused, OpId::conv2d_bias_act), 2);
  EXPECT_EQ(count_steps(fused, OpId::conv2d), 0);
  EXPECT_EQ(count_steps(fused, OpId::relu), 0);
  std::vector<Activation> acts;
  for (const PlanStep& s : fused.steps)
    if (s.kind == StepKind::Kernel && s.op == OpId::conv2d_bias_act) acts.push_back(s.attrs.activation);
  EXPECT_EQ(acts, (std::vector<Activation>{Activation::relu, Activation::none}));

  std::mt19937_64 rng(std::random_device{}());
  Executor a(std::move(fused)), b(plan_graph(g, outputs, unfused()));
  for (int run = 0; run < 3; ++run) {
    std::map<std::string, Tensor> feeds;
    for (const char* name : {"x", "w1", "b1", "w2", "b2"})
      feeds[name] = random_tensor(g.type_of(g.find_leaf(name)).shape, rng, DType::f32);
    expect_close(a.run(feeds), b.run(feeds), 1e-4);
  }
}

// A backend with matmul but no matmul_bias_act: fusing would move the matmul to the next backend,
// so the planner keeps it unfused where it is.
class MatmulOnlyBackend final : public HostTestBackend {
 public:
  MatmulOnlyBackend() : HostTestBackend("matmul-only") { register_kernel(OpId::matmul, matmul_kernel, {DType::f64}); }

 private:
  static void matmul_kernel(const KernelCall& call) { backend_registry().reference().run(OpId::matmul, call); }
};

TEST(Fusion, NotWhereTheMatmulsBackendLacksTheFusedKernel) {
  MatmulOnlyBackend only;
  Graph g;
  Sym x = g.input("x", {{4, 3}, DType::f64});
  Sym w = g.param("w", {{3, 2}, DType::f64});
  Sym b = g.param("b", {{2}, DType::f64});
  PlanOptions options;
  options.backends = {&only, &backend_registry().reference()};
  Plan plan = plan_graph(g, {relu(add(matmul(x, w), b))}, options);
  SCOPED_TRACE(plan.to_string());
  EXPECT_EQ(count_steps(plan, OpId::matmul_bias_act), 0);
  for (const PlanStep& s : plan.steps)
    if (s.kind == StepKind::Kernel && s.op == OpId::matmul) {
      EXPECT_EQ(s.backend, &only);
    }
  // Nor the weight and bias gradients.
  Sym loss = sum(relu(add(matmul(x, w), b)));
  std::vector<Sym> grads = gradients(g, loss, {w, b});
  EXPECT_EQ(count_steps(plan_graph(g, grads, options), OpId::matmul_bgrad), 0);
}

// The weight and bias gradients of y = x w + b (w not transposed: dW = x^T g) and of
// y = x w^T + b (dW = g^T x) pair up; the numbers are the unfused plan's, f32 bitwise on cpu
// (the fused kernel runs the same two kernels there) and f64 to 1e-12 on ref.
// The pair is one step with two outputs: the weight gradient and the bias gradient are its own
// buffers (no views of a packed one), and the numbers are the unfused plan's.
TEST(Fusion, WeightAndBiasGradientsBecomeOneStepWithTwoOutputs) {
  std::mt19937_64 rng(std::random_device{}());
  for (bool trans_w : {false, true}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(fmt::format("trans_w {} {}", trans_w, dtype));
      Graph g;
      Sym x = g.input("x", {{10, 7}, dtype});
      Sym w = g.param("w", {trans_w ? Shape{5, 7} : Shape{7, 5}, dtype});
      Sym b = g.param("b", {{5}, dtype});
      Sym y = add(matmul(x, w, false, trans_w), b);
      Sym loss = mean(mul(y, tanh(y)));
      std::vector<Sym> outputs = gradients(g, loss, {w, b});
      outputs.push_back(reshape(outputs[0], {-1}));  // a view of the step's output 0
      Plan fused = plan_graph(g, outputs);
      SCOPED_TRACE(fused.to_string());
      ASSERT_EQ(count_steps(fused, OpId::matmul_bgrad), 1);
      for (const PlanStep& s : fused.steps) {
        if (s.kind == StepKind::Kernel && s.op == OpId::matmul_bgrad) {
          EXPECT_EQ(s.attrs.axis, trans_w ? 0 : 1);
          ASSERT_EQ(s.output_count, 2);
          EXPECT_EQ(fused.values[s.output].type.shape, g.type_of(w.id).shape);
          EXPECT_EQ(fused.values[s.output + 1].type.shape, (Shape{5}));
          EXPECT_EQ(fused.values[s.output].home, ValueHome::Arena);
          EXPECT_EQ(fused.values[s.output + 1].home, ValueHome::Arena);
          EXPECT_EQ(fused.outputs[1], s.output + 1) << "db is the step's output 1 itself";
        }
      }
      std::map<std::string, Tensor> feeds{{"x", random_tensor({10, 7}, rng, dtype)},
                                          {"w", random_tensor(g.type_of(w.id).shape, rng, dtype)},
                                          {"b", random_tensor({5}, rng, dtype)}};
      expect_same_as_unfused(std::move(fused), plan_graph(g, outputs, unfused()), feeds, dtype);
    }
  }
  // Not paired: a sum that keeps its dims, or over the other axis.
  Graph g;
  Sym x = g.input("x", {{6, 4}, DType::f32});
  Sym gr = g.input("g", {{6, 3}, DType::f32});
  Sym dw = matmul(x, gr, true, false);
  EXPECT_EQ(count_steps(plan_graph(g, {dw, sum(gr, {0}, true)}), OpId::matmul_bgrad), 0);
  EXPECT_EQ(count_steps(plan_graph(g, {dw, sum(gr, {1})}), OpId::matmul_bgrad), 0);
  EXPECT_EQ(count_steps(plan_graph(g, {dw, sum(gr, {0})}), OpId::matmul_bgrad), 1);
}

// g W^T reaching a relu (or gelu) and read by nothing else: one matmul_dact step whose numbers are
// the unfused plan's, f32 bitwise on cpu (its kernel runs the same two kernels there) and f64 to
// 1e-12 on ref; not where the product is read elsewhere.
TEST(Fusion, TheGradientReachingAnActivationMeetsItsDerivativeInTheProduct) {
  std::mt19937_64 rng(std::random_device{}());
  for (bool gelu_act : {false, true}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(fmt::format("{} {}", gelu_act ? "gelu" : "relu", dtype));
      Graph g;
      Sym x = g.input("x", {{10, 7}, dtype});
      Sym w1 = g.param("w1", {{6, 7}, dtype});
      Sym w2 = g.param("w2", {{4, 6}, dtype});
      Sym pre = matmul(x, w1, false, true);
      Sym h = gelu_act ? gelu(pre, /*tanh*/ true) : relu(pre);
      Sym y = matmul(h, w2, false, true);
      Sym loss = mean(mul(y, tanh(y)));
      std::vector<Sym> outputs = gradients(g, loss, {x, w1, w2});
      Plan fused = plan_graph(g, outputs);
      SCOPED_TRACE(fused.to_string());
      ASSERT_EQ(count_steps(fused, OpId::matmul_dact), 1);
      EXPECT_EQ(count_steps(fused, gelu_act ? OpId::gelu_backward : OpId::relu_backward), 0);
      for (const PlanStep& s : fused.steps) {
        if (s.kind == StepKind::Kernel && s.op == OpId::matmul_dact) {
          EXPECT_EQ(s.attrs.activation, gelu_act ? Activation::gelu : Activation::relu);
          EXPECT_TRUE(s.attrs.trans_b == false && s.attrs.trans_a == false);  // g (10, 4) @ w2 (4, 6)
          EXPECT_EQ(s.attrs.gelu_tanh, gelu_act);
        }
      }
      std::map<std::string, Tensor> feeds{{"x", random_tensor({10, 7}, rng, dtype)},
                                          {"w1", random_tensor({6, 7}, rng, dtype)},
                                          {"w2", random_tensor({4, 6}, rng, dtype)}};
      Plan separate = plan_graph(g, outputs, unfused());
      EXPECT_LT(fused.unshared_bytes(), separate.unshared_bytes());  // the product's buffer is gone
      EXPECT_LE(live_bytes_bound(fused), live_bytes_bound(separate));
      EXPECT_LE(fused.peak_bytes(), separate.peak_bytes());
      expect_same_as_unfused(std::move(fused), std::move(separate), feeds, dtype);
    }
  }
  // Not fused: the product is an output too, or the activation's backward reads it as its aux.
  Graph g;
  Sym gr = g.input("g", {{6, 3}, DType::f32});
  Sym w = g.param("w", {{3, 5}, DType::f32});
  Sym y = g.input("y", {{6, 5}, DType::f32});
  Sym product = matmul(gr, w);
  EXPECT_EQ(count_steps(plan_graph(g, {emit(OpId::relu_backward, {y, product}), product}), OpId::matmul_dact), 0);
  EXPECT_EQ(count_steps(plan_graph(g, {emit(OpId::relu_backward, {product, y})}), OpId::matmul_dact), 0);
  EXPECT_EQ(count_steps(plan_graph(g, {emit(OpId::relu_backward, {y, product})}), OpId::matmul_dact), 1);
}

}  // namespace
}  // namespace gpuml
