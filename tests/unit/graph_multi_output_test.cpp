// Ops with several outputs through the whole stack (graph/graph.h): matmul_bgrad, a weight
// gradient g^T x and its bias gradient sum(g, rows), emitted as one node with two outputs,
// planned and run on ref and on cpu, and differentiated; compared with the same values built
// from the one-output ops matmul and sum.
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

double tolerance(DType dtype) { return dtype == DType::f64 ? 1e-12 : 1e-5; }

// g (9, 4) summed over its rows: matmul_bgrad(g, x) with g as a transposed first operand.
Attrs bgrad_attrs() {
  Attrs a;
  a.trans_a = true;
  a.axis = 0;
  return a;
}

// The graph g^T x and sum(g, rows) as one two-output node.
struct TwoOutputs {
  explicit TwoOutputs(DType dtype) {
    gr = g.input("g", {{9, 4}, dtype});
    x = g.input("x", {{9, 6}, dtype});
    outs = emit_outputs(OpId::matmul_bgrad, {gr, x}, bgrad_attrs());
  }
  std::map<std::string, Tensor> feeds(std::mt19937_64& rng) const {
    return {{"g", random_tensor({9, 4}, rng, gr.dtype())}, {"x", random_tensor({9, 6}, rng, gr.dtype())}};
  }
  Graph g;
  Sym gr, x;
  std::vector<Sym> outs;
};

PlanOptions only_on(Backend& backend, bool fuse = true) {
  PlanOptions o;
  o.backends = {&backend};
  o.fuse = fuse;
  return o;
}

TEST(MultiOutput, ANodeWithTwoOutputsTakesTwoConsecutiveValueIds) {
  TwoOutputs m(DType::f32);
  ASSERT_EQ(m.outs.size(), 2u);
  const int op = m.outs[0].id;
  EXPECT_EQ(m.outs[1].id, op + 1);
  EXPECT_EQ(m.g.node(op).role, NodeRole::Op);
  EXPECT_EQ(m.g.output_count(op), 2);
  const Node& second = m.g.node(op + 1);
  EXPECT_EQ(second.role, NodeRole::OpOutput);
  EXPECT_EQ(second.output_index, 1);
  EXPECT_EQ(second.inputs, std::vector<int>{op});
  EXPECT_EQ(m.outs[0].shape(), (Shape{4, 6}));
  EXPECT_EQ(m.outs[1].shape(), (Shape{4}));
  EXPECT_NE(m.g.to_string().find("%3 = output 1 of %2 (4,) f32"), std::string::npos) << m.g.to_string();
  // The one-output paths refuse it instead of handing back output 0 alone.
  EXPECT_THROW(emit(OpId::matmul_bgrad, {m.gr, m.x}, bgrad_attrs()), Error);
  const std::vector<TensorType> types{{{9, 4}, DType::f32}, {{9, 6}, DType::f32}};
  EXPECT_THROW(infer_type(OpId::matmul_bgrad, types, bgrad_attrs()), Error);
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, Tensor> feeds = m.feeds(rng);
  EXPECT_THROW(run_op(backend_registry().reference(), OpId::matmul_bgrad, {feeds["g"], feeds["x"]}, bgrad_attrs()),
               Error);
}

// One kernel step writes both outputs into buffers of their own, on the backend asked for; its
// numbers are ref's matmul and sum, whether a plan asks for both, for output 1 only, or for a
// value computed from output 1.
TEST(MultiOutput, PlansAndRunsAsOneStepOnRefAndCpu) {
  std::mt19937_64 rng(std::random_device{}());
  Backend& ref = backend_registry().reference();
  for (const char* name : {"ref", "cpu"}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(fmt::format("{} {}", name, dtype));
      Backend& backend = backend_registry().get(name);
      TwoOutputs m(dtype);
      Sym after = tanh(m.outs[1]);
      Plan plan = plan_graph(m.g, {m.outs[0], m.outs[1], after}, only_on(backend));
      SCOPED_TRACE(plan.to_string());
      int steps = 0;
      for (const PlanStep& s : plan.steps) {
        if (s.kind != StepKind::Kernel || s.op != OpId::matmul_bgrad) continue;
        ++steps;
        EXPECT_EQ(s.backend, &backend);
        ASSERT_EQ(s.output_count, 2);
        EXPECT_EQ(plan.outputs[0], s.output);
        EXPECT_EQ(plan.outputs[1], s.output + 1);
        EXPECT_EQ(plan.values[s.output + 1].home, ValueHome::Arena);
        EXPECT_EQ(plan.values[s.output + 1].graph_node, m.outs[1].id);
      }
      EXPECT_EQ(steps, 1);

      Attrs trans_a;
      trans_a.trans_a = true;
      Attrs rows;
      rows.axes = {0};
      Executor ex(std::move(plan));
      for (int run = 0; run < 2; ++run) {  // the arena is reused: the second run must not see the first
        std::map<std::string, Tensor> feeds = m.feeds(rng);
        const Tensor product = run_op(ref, OpId::matmul, {feeds["g"], feeds["x"]}, trans_a);
        const Tensor sums = run_op(ref, OpId::sum, {feeds["g"]}, rows);
        std::vector<Tensor> out = ex.run(feeds);
        expect_close(out[0], product, tolerance(dtype));
        expect_close(out[1], sums, tolerance(dtype));
        expect_close(out[2], run_op(ref, OpId::tanh, {sums}), tolerance(dtype));
      }
      Executor second_only(plan_graph(m.g, {m.outs[1]}, only_on(backend)));
      std::map<std::string, Tensor> feeds = m.feeds(rng);
      expect_close(second_only.run(feeds)[0], run_op(ref, OpId::sum, {feeds["g"]}, rows), tolerance(dtype));
    }
  }
}

// The loss of both outputs, of output 0 alone and of output 1 alone (the other output then has
// no upstream gradient): autodiff through the two-output node gives the gradients of the same loss
// built from matmul and sum (planned unfused, so that it stays one-output ops), on ref and on cpu.
TEST(MultiOutput, AutodiffThroughEitherOutputMatchesTheOneOutputOps) {
  std::mt19937_64 rng(std::random_device{}());
  enum class Loss { both, product, sums };
  for (const char* name : {"ref", "cpu"}) {
    for (Loss which : {Loss::both, Loss::product, Loss::sums}) {
      SCOPED_TRACE(fmt::format("{} loss {}", name, static_cast<int>(which)));
      Backend& backend = backend_registry().get(name);
      auto loss_of = [&](Graph& g, Sym product, Sym sums) {
        Sym from_product = sum(mul(product, g.input("r0", {{4, 6}, DType::f64})));
        Sym from_sums = sum(mul(tanh(sums), g.input("r1", {{4}, DType::f64})));
        return which == Loss::both ? add(from_product, from_sums) : which == Loss::product ? from_product : from_sums;
      };
      TwoOutputs m(DType::f64);
      Sym loss = loss_of(m.g, m.outs[0], m.outs[1]);
      std::vector<Sym> outputs{loss};
      for (Sym s : gradients(m.g, loss, {m.gr, m.x})) outputs.push_back(s);

      Graph g;
      Sym gr = g.input("g", {{9, 4}, DType::f64});
      Sym x = g.input("x", {{9, 6}, DType::f64});
      Sym plain_loss = loss_of(g, matmul(gr, x, true, false), sum(gr, {0}));
      std::vector<Sym> plain{plain_loss};
      for (Sym s : gradients(g, plain_loss, {gr, x})) plain.push_back(s);

      std::map<std::string, Tensor> feeds = m.feeds(rng);
      feeds["r0"] = random_tensor({4, 6}, rng, DType::f64);
      feeds["r1"] = random_tensor({4}, rng, DType::f64);
      std::vector<Tensor> got = Executor(plan_graph(m.g, outputs, only_on(backend))).run(feeds);
      std::vector<Tensor> want = Executor(plan_graph(g, plain, only_on(backend, /*fuse*/ false))).run(feeds);
      ASSERT_EQ(got.size(), 3u);
      for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], 1e-12);
      // An output without an upstream gradient gets no zeros in its place and adds no terms: no
      // fill shaped like an output, and the product's two matmuls only where it is read.
      int matmuls = 0, output_fills = 0;
      for (int id = 0; id < m.g.size(); ++id) {
        const Node& n = m.g.node(id);
        matmuls += n.role == NodeRole::Op && n.op == OpId::matmul;
        output_fills += n.role == NodeRole::Op && n.op == OpId::fill &&
                        (n.type.shape == m.outs[0].shape() || n.type.shape == m.outs[1].shape());
      }
      EXPECT_EQ(matmuls, which == Loss::sums ? 0 : 2) << m.g.to_string();
      EXPECT_EQ(output_fills, 0) << m.g.to_string();
      if (which == Loss::sums) {  // x reaches the loss only through output 0
        for (double v : got[2].to_doubles()) EXPECT_EQ(v, 0.0);
      }
    }
  }
}

}  // namespace
}  // namespace gpuml
