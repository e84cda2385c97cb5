// cross_entropy keeps each row's log-sum-exp as output 1 for its backward (issue 20; llm.c's
// fused classifier): a training step computes the row statistics once, in the forward, and the
// backward is one pass over the logits that reads them; the gradient through lse itself matches
// the same value built from one-output ops.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

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

Tensor labels_of(std::vector<double> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return Tensor::from_values({n}, values, DType::i64);
}

// The outputs' types: the loss a scalar in the logits' dtype, lse one per row, f32 unless the
// logits are f64; the backward takes lse in that type and no other.
TEST(CrossEntropyKeptLse, OutputsAreLossAndLsePerRow) {
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    const std::vector<TensorType> in{{{6, 11}, dtype}, {{6}, DType::i64}};
    const std::vector<TensorType> out = infer_types(OpId::cross_entropy, in, Attrs{});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], (TensorType{{}, dtype}));
    EXPECT_EQ(out[1], (TensorType{{6}, dtype == DType::f64 ? DType::f64 : DType::f32}));
  }
  const TensorType logits{{6, 11}, DType::f32}, labels{{6}, DType::i64}, dloss{{}, DType::f32};
  auto backward_type = [&](const TensorType& lse) {
    return infer_type(OpId::cross_entropy_backward, std::vector<TensorType>{logits, labels, dloss, lse}, Attrs{});
  };
  EXPECT_EQ(backward_type({{6}, DType::f32}), logits);
  EXPECT_THROW(backward_type({{6}, DType::f64}), Error);
  EXPECT_THROW(backward_type({{5}, DType::f32}), Error);
  EXPECT_THROW(infer_type(OpId::cross_entropy_backward, std::vector<TensorType>{logits, labels, dloss}, Attrs{}),
               Error);
  // The builder still gives the loss.
  Graph g;
  Sym loss = cross_entropy(g.input("x", {{6, 11}, DType::f32}), g.input("y", {{6}, DType::i64}));
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_EQ(g.output_count(loss.id), 2);
}

// A training step's plan: one cross_entropy step (writing loss and lse), one
// cross_entropy_backward step reading that step's output 1, and nothing else reducing the logits'
// rows or exponentiating them (no softmax, no max or sum over the vocabulary, no exp).
TEST(CrossEntropyKeptLse, TrainingStepComputesTheRowStatisticsOnce) {
  for (const char* name : {"ref", "cpu"}) {
    SCOPED_TRACE(name);
    Backend& backend = backend_registry().get(name);
    Graph g;
    Sym x = g.input("x", {{12, 8}, DType::f32});
    Sym w = g.param("w", {{29, 8}, DType::f32});
    Sym loss = cross_entropy(matmul(x, w, false, true), g.input("y", {{12}, DType::i64}));
    std::vector<Sym> outputs{loss};
    for (Sym s : gradients(g, loss, {w})) outputs.push_back(s);
    Plan plan = plan_graph(g, outputs, only_on(backend));
    SCOPED_TRACE(plan.to_string());
    int forward_steps = 0, backward_steps = 0, row_passes = 0, forward_output = -1;
    for (const PlanStep& s : plan.steps) {
      if (s.kind != StepKind::Kernel) continue;
      if (s.op == OpId::cross_entropy) {
        ++forward_steps;
        EXPECT_EQ(s.output_count, 2);
        forward_output = s.output;
      }
      row_passes += s.op == OpId::softmax || s.op == OpId::log_softmax || s.op == OpId::exp ||
                    s.op == OpId::max || s.op == OpId::log;
    }
    for (const PlanStep& s : plan.steps) {
      if (s.kind != StepKind::Kernel || s.op != OpId::cross_entropy_backward) continue;
      ++backward_steps;
      ASSERT_EQ(s.inputs.size(), 4u);
      EXPECT_EQ(plan.root_of(s.inputs[3]), forward_output + 1);  // lse
    }
    EXPECT_EQ(forward_steps, 1);
    EXPECT_EQ(backward_steps, 1);
    EXPECT_EQ(row_passes, 0);
  }
}

// lse is each row's log-sum-exp, ignored rows too; the backward reads the lse it is given: with
// cross_entropy's own it matches ref, and with lse - 1 every kept row's softmax is e times larger
// (a kernel recomputing lse from the logits would not change).
TEST(CrossEntropyKeptLse, BackwardKernelReadsTheLseItIsGiven) {
  std::mt19937_64 rng(std::random_device{}());
  Backend& ref = backend_registry().reference();
  Backend& cpu = backend_registry().get("cpu");
  const Tensor labels = labels_of({3, -100, 0, 40, 7});
  for (DType dtype : {DType::f32, DType::f64}) {
    SCOPED_TRACE(fmt::format("{}", dtype));
    const double tol = dtype == DType::f64 ? 1e-12 : 1e-5;
    const Tensor logits = random_tensor({5, 41}, rng, dtype);
    const Tensor dloss = Tensor::from_values({}, {0.75}, dtype);
    for (Backend* backend : {&ref, &cpu}) {
      SCOPED_TRACE(backend->name());
      std::vector<Tensor> fwd = run_op_outputs(*backend, OpId::cross_entropy, {logits, labels});
      ASSERT_EQ(fwd.size(), 2u);
      const std::vector<double> x = logits.to_doubles(), lse = fwd[1].to_doubles();
      double loss = 0;
      for (int r = 0; r < 5; ++r) {
        double s = 0;
        for (int j = 0; j < 41; ++j) s += std::exp(x[r * 41 + j]);
        EXPECT_NEAR(lse[r], std::log(s), tol * (1 + std::abs(lse[r]))) << "row " << r;
        const int64_t label = static_cast<int64_t>(labels.to_doubles()[r]);
        if (label >= 0) loss += (std::log(s) - x[r * 41 + label]) / 4;
      }
      EXPECT_NEAR(fwd[0].item_as_double(0), loss, tol * (1 + loss));
      const Tensor dx = run_op(*backend, OpId::cross_entropy_backward, {logits, labels, dloss, fwd[1]});
      expect_close(dx, run_op(ref, OpId::cross_entropy_backward, {logits, labels, dloss, fwd[1]}), tol);
      const Tensor lowered = run_op(ref, OpId::sub, {fwd[1], Tensor::from_values({}, {1.0}, fwd[1].dtype())});
      const std::vector<double> moved =
          run_op(*backend, OpId::cross_entropy_backward, {logits, labels, dloss, lowered}).to_doubles();
      const std::vector<double> kept = dx.to_doubles();
      for (int r = 0; r < 5; ++r)
        for (int j = 0; j < 41; ++j) {
          const int64_t label = static_cast<int64_t>(labels.to_doubles()[r]);
          const double scale = 0.75 / 4, onehot = j == label ? 1.0 : 0.0;
          const double want = label < 0 ? 0.0 : ((kept[r * 41 + j] / scale + onehot) * std::exp(1.0) - onehot) * scale;
          ASSERT_NEAR(moved[r * 41 + j], want, 10 * tol * (1 + std::abs(want))) << r << ", " << j;
        }
    }
  }
}

// Autodiff through lse alone (the loss has no upstream gradient), and through both: the gradient
// matches the same losses built from exp, sum, log and log_softmax.
TEST(CrossEntropyKeptLse, GradientThroughLseMatchesTheOneOutputOps) {
  std::mt19937_64 rng(std::random_device{}());
  const DType f64 = DType::f64;
  const Tensor labels = labels_of({2, -100, 5, 0});
  for (const char* name : {"ref", "cpu"}) {
    for (bool with_loss : {false, true}) {
      SCOPED_TRACE(fmt::format("{} with_loss {}", name, with_loss));
      Backend& backend = backend_registry().get(name);
      Graph g;
      Sym x = g.input("x", {{4, 6}, f64});
      std::vector<Sym> outs = emit_outputs(OpId::cross_entropy, {x, g.input("y", {{4}, DType::i64})}, Attrs{});
      Sym from_lse = sum(mul(tanh(outs[1]), g.input("r", {{4}, f64})));
      Sym loss = with_loss ? add(from_lse, outs[0]) : from_lse;
      std::vector<Sym> outputs{loss};
      for (Sym s : gradients(g, loss, {x})) outputs.push_back(s);

      Graph plain;
      Sym px = plain.input("x", {{4, 6}, f64});
      Sym lse = log(sum(exp(px), {1}));
      Sym plain_from_lse = sum(mul(tanh(lse), plain.input("r", {{4}, f64})));
      // The kept rows' mean of -log_softmax[label], as a mask over a one-hot of the labels.
      Sym picked = sum(mul(log_softmax(px, 1), plain.input("onehot", {{4, 6}, f64})));
      Sym plain_loss = with_loss ? add(plain_from_lse, mul_scalar(picked, -1.0 / 3)) : plain_from_lse;
      std::vector<Sym> want_outputs{plain_loss};
      for (Sym s : gradients(plain, plain_loss, {px})) want_outputs.push_back(s);

      std::vector<double> onehot(24, 0.0);
      onehot[0 * 6 + 2] = onehot[2 * 6 + 5] = onehot[3 * 6 + 0] = 1.0;
      std::map<std::string, Tensor> feeds{{"x", random_tensor({4, 6}, rng, f64)},
                                          {"y", labels},
                                          {"r", random_tensor({4}, rng, f64)},
                                          {"onehot", Tensor::from_values({4, 6}, onehot, f64)}};
      std::vector<Tensor> got = Executor(plan_graph(g, outputs, only_on(backend))).run(feeds);
      std::vector<Tensor> want = Executor(plan_graph(plain, want_outputs, only_on(backend))).run(feeds);
      ASSERT_EQ(got.size(), 2u);
      for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], 1e-10);
    }
  }
}

}  // namespace
}  // namespace gpuml
