// layer_norm keeps each row's (mean, rstd) as outputs 1 and 2 for its backward (issue 19, item
// 6; BENCHMARKS.md "layer_norm keeping (mean, rstd)"): a training step computes the statistics
// once, in the forward step, and the backward reads them instead of reducing x again; the
// gradients through the statistics themselves match the same values built from one-output ops.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <omp.h>

#include "backend/dispatch.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "graph_test_util.h"

namespace gpuml {
namespace {

using testing::expect_close;
using testing::random_tensor;

PlanOptions only_on(Backend& backend) {
  PlanOptions o;
  o.backends = {&backend};
  return o;
}

Attrs ln_attrs(int64_t axis) {
  Attrs a;
  a.axis = axis;
  a.eps = 1e-5;
  return a;
}

// The outputs' types: y like x, mean and rstd one per row (x's leading dims), f32 unless x is f64.
TEST(LayerNormKeptStats, OutputsAreYMeanAndRstdPerRow) {
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    const std::vector<TensorType> in{{{4, 3, 5}, dtype}, {{3, 5}, dtype}, {{3, 5}, dtype}};
    const std::vector<TensorType> out = infer_types(OpId::layer_norm, in, ln_attrs(1));
    ASSERT_EQ(out.size(), 3u);
    const DType stats = dtype == DType::f64 ? DType::f64 : DType::f32;
    EXPECT_EQ(out[0], in[0]);
    EXPECT_EQ(out[1], (TensorType{{4}, stats}));
    EXPECT_EQ(out[2], (TensorType{{4}, stats}));
  }
  // The backward takes them in that type and no other.
  const TensorType x{{4, 8}, DType::f32}, w{{8}, DType::f32};
  auto backward_type = [&](const TensorType& mean, const TensorType& rstd) {
    return infer_types(OpId::layer_norm_backward, std::vector<TensorType>{x, w, x, mean, rstd}, ln_attrs(-1));
  };
  EXPECT_EQ(backward_type({{4}, DType::f32}, {{4}, DType::f32}), (std::vector<TensorType>{x, w, w}));  // dx, dw, db
  EXPECT_THROW(backward_type({{4}, DType::f64}, {{4}, DType::f32}), Error);
  EXPECT_THROW(backward_type({{4}, DType::f32}, {{4, 1}, DType::f32}), Error);
  // The builder still gives y.
  Graph g;
  Sym y = layer_norm(g.input("x", {{6, 8}, DType::f32}), g.param("w", {{8}, DType::f32}), g.param("b", {{8}, DType::f32}));
  EXPECT_EQ(y.shape(), (Shape{6, 8}));
  EXPECT_EQ(g.output_count(y.id), 3);
}

// A training step's plan: one layer_norm step (writing y, mean, rstd), one layer_norm_backward
// step reading that step's outputs 1 and 2, and no other reduction over the normalised axis (the
// weight gradient's xhat comes from the kept statistics too, not from a second layer_norm).
TEST(LayerNormKeptStats, TrainingStepComputesTheStatisticsOnce) {
  for (const char* name : {"ref", "cpu"}) {
    SCOPED_TRACE(name);
    Backend& backend = backend_registry().get(name);
    Graph g;
    Sym x = g.input("x", {{8, 3, 16}, DType::f32});
    Sym w = g.param("w", {{16}, DType::f32}), b = g.param("b", {{16}, DType::f32});
    Sym loss = sum(mul(layer_norm(x, w, b), g.input("r", {{8, 3, 16}, DType::f32})));
    std::vector<Sym> outputs{loss};
    for (Sym s : gradients(g, loss, {x, w, b})) outputs.push_back(s);
    Plan plan = plan_graph(g, outputs, only_on(backend));
    SCOPED_TRACE(plan.to_string());
    int forward_steps = 0, backward_steps = 0, stat_reductions = 0, forward_output = -1;
    for (const PlanStep& s : plan.steps) {
      if (s.kind != StepKind::Kernel) continue;
      if (s.op == OpId::layer_norm) {
        ++forward_steps;
        EXPECT_EQ(s.output_count, 3);
        forward_output = s.output;
      }
      if ((s.op == OpId::sum || s.op == OpId::mean) && !s.attrs.axes.empty())
        for (int64_t axis : s.attrs.axes) stat_reductions += axis == 2 || axis == -1;
    }
    for (const PlanStep& s : plan.steps) {
      if (s.kind != StepKind::Kernel || s.op != OpId::layer_norm_backward) continue;
      ++backward_steps;
      ASSERT_EQ(s.inputs.size(), 5u);
      EXPECT_EQ(plan.root_of(s.inputs[3]), forward_output + 1);  // mean
      EXPECT_EQ(plan.root_of(s.inputs[4]), forward_output + 2);  // rstd
    }
    EXPECT_EQ(forward_steps, 1);
    EXPECT_EQ(backward_steps, 1);
    EXPECT_EQ(stat_reductions, 0);
  }
}

// The backward kernel reads the statistics it is given: with layer_norm's own it matches ref, and
// with a shifted mean it gives something else (a kernel recomputing them from x would not).
TEST(LayerNormKeptStats, BackwardKernelReadsTheStatisticsItIsGiven) {
  std::mt19937_64 rng(std::random_device{}());
  Backend& ref = backend_registry().reference();
  for (DType dtype : {DType::f32, DType::f64}) {
    SCOPED_TRACE(fmt::format("{}", dtype));
    const double tol = dtype == DType::f64 ? 1e-12 : 1e-4;
    Backend& cpu = backend_registry().get("cpu");
    const Tensor x = random_tensor({5, 24}, rng, dtype), w = random_tensor({24}, rng, dtype);
    const Tensor b = random_tensor({24}, rng, dtype), dy = random_tensor({5, 24}, rng, dtype);
    const Attrs a = ln_attrs(-1);
    std::vector<Tensor> fwd = run_op_outputs(cpu, OpId::layer_norm, {x, w, b}, a);
    ASSERT_EQ(fwd.size(), 3u);
    const std::vector<Tensor> grads = run_op_outputs(cpu, OpId::layer_norm_backward, {x, w, dy, fwd[1], fwd[2]}, a);
    const std::vector<Tensor> want = run_op_outputs(ref, OpId::layer_norm_backward, {x, w, dy, fwd[1], fwd[2]}, a);
    ASSERT_EQ(grads.size(), 3u);
    for (int i = 0; i < 3; ++i) expect_close(grads[i], want[i], tol);  // dx, dw, db
    const Tensor& dx = grads[0];
    // The statistics are x's: mean and 1 / sqrt(var + eps) of each row.
    std::vector<double> xv = x.to_doubles(), mean = fwd[1].to_doubles(), rstd = fwd[2].to_doubles();
    for (int r = 0; r < 5; ++r) {
      double m = 0, v = 0;
      for (int j = 0; j < 24; ++j) m += xv[r * 24 + j] / 24;
      for (int j = 0; j < 24; ++j) v += (xv[r * 24 + j] - m) * (xv[r * 24 + j] - m) / 24;
      EXPECT_NEAR(mean[r], m, tol * (1 + std::abs(m)));
      EXPECT_NEAR(rstd[r], 1 / std::sqrt(v + 1e-5), tol * (1 + std::abs(rstd[r])));
    }
    const Tensor shifted = run_op(ref, OpId::add, {fwd[1], Tensor::from_values({}, {1.0}, fwd[1].dtype())});
    const std::vector<double> moved =
        run_op_outputs(cpu, OpId::layer_norm_backward, {x, w, dy, shifted, fwd[2]}, a)[0].to_doubles();
    const std::vector<double> kept = dx.to_doubles();
    double largest = 0;
    for (size_t i = 0; i < kept.size(); ++i) largest = std::max(largest, std::abs(moved[i] - kept[i]));
    EXPECT_GT(largest, 1e-3);
  }
}

// The parameters' gradients are column sums over row blocks added in a fixed order: the same bits
// on one thread and on several.
TEST(LayerNormKeptStats, ParameterGradientsDoNotDependOnTheThreadCount) {
  std::mt19937_64 rng(std::random_device{}());
  Backend& cpu = backend_registry().get("cpu");
  const Tensor x = random_tensor({300, 40}, rng, DType::f32), w = random_tensor({40}, rng, DType::f32);
  const Tensor b = random_tensor({40}, rng, DType::f32), dy = random_tensor({300, 40}, rng, DType::f32);
  const Attrs a = ln_attrs(-1);
  const std::vector<Tensor> fwd = run_op_outputs(cpu, OpId::layer_norm, {x, w, b}, a);
  auto grads_on = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<Tensor> g = run_op_outputs(cpu, OpId::layer_norm_backward, {x, w, dy, fwd[1], fwd[2]}, a);
    omp_set_num_threads(saved);
    return g;
  };
  const std::vector<Tensor> one = grads_on(1), three = grads_on(3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(one[i].to_doubles(), three[i].to_doubles()) << "output " << i;
}

// Autodiff through the statistics alone (y has no upstream gradient): the gradient of a loss of
// mean, of rstd, or of both, matches the same loss built from mean, sub, mul and rsqrt.
TEST(LayerNormKeptStats, GradientThroughTheStatisticsMatchesTheOneOutputOps) {
  std::mt19937_64 rng(std::random_device{}());
  enum class Loss { mean, rstd, both };
  for (const char* name : {"ref", "cpu"}) {
    for (Loss which : {Loss::mean, Loss::rstd, Loss::both}) {
      SCOPED_TRACE(fmt::format("{} loss {}", name, static_cast<int>(which)));
      Backend& backend = backend_registry().get(name);
      const DType f64 = DType::f64;
      auto loss_of = [&](Graph& g, Sym mean, Sym rstd) {
        Sym from_mean = sum(mul(mean, g.input("r0", {{4, 3}, f64})));
        Sym from_rstd = sum(mul(tanh(rstd), g.input("r1", {{4, 3}, f64})));
        return which == Loss::both ? add(from_mean, from_rstd) : which == Loss::mean ? from_mean : from_rstd;
      };
      Graph g;
      Sym x = g.input("x", {{4, 3, 7}, f64});
      std::vector<Sym> outs =
          emit_outputs(OpId::layer_norm, {x, g.param("w", {{7}, f64}), g.param("b", {{7}, f64})}, ln_attrs(-1));
      Sym loss = loss_of(g, outs[1], outs[2]);
      std::vector<Sym> outputs{loss};
      for (Sym s : gradients(g, loss, {x})) outputs.push_back(s);

      Graph plain;
      Sym px = plain.input("x", {{4, 3, 7}, f64});
      Sym m = mean(px, {2}, true);
      Sym centered = sub(px, m);
      Sym rstd = rsqrt(add_scalar(mean(mul(centered, centered), {2}), 1e-5));
      Sym plain_loss = loss_of(plain, reshape(m, {4, 3}), rstd);
      std::vector<Sym> want_outputs{plain_loss};
      for (Sym s : gradients(plain, plain_loss, {px})) want_outputs.push_back(s);

      std::map<std::string, Tensor> feeds{{"x", random_tensor({4, 3, 7}, rng, f64)},
                                          {"w", random_tensor({7}, rng, f64)},
                                          {"b", random_tensor({7}, rng, f64)},
                                          {"r0", random_tensor({4, 3}, rng, f64)},
                                          {"r1", random_tensor({4, 3}, rng, f64)}};
      std::vector<Tensor> got = Executor(plan_graph(g, outputs, only_on(backend))).run(feeds);
      std::vector<Tensor> want = Executor(plan_graph(plain, want_outputs, only_on(backend))).run(feeds);
      ASSERT_EQ(got.size(), 2u);
      for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], 1e-10);
    }
  }
}

}  // namespace
}  // namespace gpuml
