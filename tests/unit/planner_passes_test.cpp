// Each fusion pass on its own (graph/passes/): what it claims, and that it leaves alone the nodes
// an earlier pass took (its `taken` input), which the order of fusion_passes() relies on; that
// merging claims refuses a node claimed twice; and that a backend's shape limit is a placement
// decision (Backend::supports(OpQuery)).
#include <gtest/gtest.h>

#include <string>

#include "backend/dispatch.h"
#include "graph/fusion.h"
#include "graph/passes/passes.h"
#include "host_test_backend.h"

namespace gpuml {
namespace {

std::vector<bool> all_needed(const Graph& g) {
  return std::vector<bool>(g.size(), true);
}

Placement cpu_then_ref() {
  PlanOptions options;
  options.backends = {&backend_registry().get("cpu"), &backend_registry().reference()};
  return Placement(options);
}

TEST(FusionPasses, RunInTheOrderTheirInputsNeed) {
  std::vector<std::string> names;
  for (const FusionPassEntry& p : fusion_passes()) names.push_back(p.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"bias_activation", "activation_backward", "bias_gradient"}));
}

TEST(FusionPasses, BiasActivationClaimsTheChainAndItsInsides) {
  Graph g;
  Sym x = g.input("x", {{4, 6}, DType::f32});
  Sym w = g.param("w", {{5, 6}, DType::f32});
  Sym b = g.param("b", {{5}, DType::f32});
  Sym product = matmul(x, w, false, true);
  Sym sum = add(product, b);
  Sym y = relu(sum);
  const Placement placement = cpu_then_ref();
  const std::vector<bool> needed = all_needed(g), taken(g.size(), false);
  Fusions claims = fuse_bias_activation(FusionInput(g, needed, {y}, placement), taken);
  ASSERT_EQ(claims.steps.size(), 1u);
  ASSERT_TRUE(claims.steps.contains(y.id));
  EXPECT_EQ(claims.steps[y.id].op, OpId::matmul_bias_act);
  EXPECT_EQ(claims.steps[y.id].attrs.activation, Activation::relu);
  EXPECT_EQ(claims.absorbed, (std::vector<int>{sum.id, product.id}));
  // The sum as an output too: only the bias joins, the relu stays its own step.
  claims = fuse_bias_activation(FusionInput(g, needed, {y, sum}, placement), taken);
  ASSERT_TRUE(claims.steps.contains(sum.id));
  EXPECT_EQ(claims.absorbed, (std::vector<int>{product.id}));
}

TEST(FusionPasses, ActivationBackwardLeavesATakenProductAlone) {
  Graph g;
  Sym gr = g.input("g", {{6, 3}, DType::f32});
  Sym w = g.param("w", {{3, 5}, DType::f32});
  Sym y = g.input("y", {{6, 5}, DType::f32});
  Sym product = matmul(gr, w);
  Sym dx = emit(OpId::relu_backward, {y, product});
  const Placement placement = cpu_then_ref();
  const std::vector<bool> needed = all_needed(g);
  const FusionInput in(g, needed, {dx}, placement);
  std::vector<bool> taken(g.size(), false);
  Fusions claims = fuse_activation_backward(in, taken);
  ASSERT_TRUE(claims.steps.contains(dx.id));
  EXPECT_EQ(claims.steps[dx.id].op, OpId::matmul_dact);
  EXPECT_EQ(claims.steps[dx.id].extra, y.id);
  EXPECT_EQ(claims.absorbed, (std::vector<int>{product.id}));
  taken[product.id] = true;
  claims = fuse_activation_backward(in, taken);
  EXPECT_TRUE(claims.steps.empty());
  EXPECT_TRUE(claims.absorbed.empty());
}

TEST(FusionPasses, BiasGradientLeavesATakenMatmulAlone) {
  Graph g;
  Sym x = g.input("x", {{6, 4}, DType::f32});
  Sym gr = g.input("g", {{6, 3}, DType::f32});
  Sym dw = matmul(x, gr, true, false);  // x^T g: g is the second operand
  Sym db = sum(gr, {0});
  const Placement placement = cpu_then_ref();
  const std::vector<bool> needed = all_needed(g);
  const FusionInput in(g, needed, {dw, db}, placement);
  std::vector<bool> taken(g.size(), false);
  Fusions claims = fuse_bias_gradient(in, taken);
  ASSERT_TRUE(claims.bgrad_pairs.contains(dw.id));  // keyed on the earlier of the two
  EXPECT_EQ(claims.bgrad_pairs[dw.id].sum, db.id);
  EXPECT_EQ(claims.bgrad_pairs[dw.id].axis, 1);
  EXPECT_EQ(claims.absorbed, (std::vector<int>{db.id}));
  taken[dw.id] = true;
  claims = fuse_bias_gradient(in, taken);
  EXPECT_TRUE(claims.bgrad_pairs.empty());
  EXPECT_TRUE(claims.absorbed.empty());
}

TEST(FusionPasses, MergingRefusesANodeClaimedTwice) {
  FusionPlan plan;
  plan.absorbed.assign(4, false);
  Fusions first;
  first.steps[2] = FusedStep{OpId::matmul_dact, 0, 1, 3, {}};
  first.absorbed = {1};
  plan.merge(first, "first");
  Fusions absorbs_a_step;
  absorbs_a_step.absorbed = {2};
  EXPECT_THROW(plan.merge(absorbs_a_step, "second"), Error);
  Fusions keyed_on_absorbed;
  keyed_on_absorbed.bgrad_pairs[1] = BgradPair{1, 3, 0};
  EXPECT_THROW(plan.merge(keyed_on_absorbed, "third"), Error);
  Fusions twice_in_itself;
  twice_in_itself.absorbed = {3, 3};
  EXPECT_THROW(plan.merge(twice_in_itself, "fourth"), Error);
}

// Like CUDA's DGELU: matmul_dact with the tanh gelu only where the row length divides by 8. Its
// kernels only count calls: these tests plan, and check what run() lets through.
class DgeluLimitedBackend final : public HostTestBackend {
 public:
  DgeluLimitedBackend() : HostTestBackend("dgelu-limited") {
    for (OpId op : {OpId::matmul, OpId::matmul_dact, OpId::gelu_backward, OpId::relu_backward})
      register_kernel(op, count_call, {DType::f32});
    register_shape_limit(OpId::matmul_dact, [](const OpQuery& q) {
      return !(q.attrs.activation == Activation::gelu && q.attrs.gelu_tanh) ||
             q.output.shape.back() % 8 == 0;
    });
  }
  static inline int calls = 0;

 private:
  static void count_call(const KernelCall&) { ++calls; }
};

// gelu_backward(x, g W) for g W of `width` columns, planned on the limited backend then ref.
Plan plan_gelu_grad(Backend& limited, int64_t width) {
  Graph g;
  Sym gr = g.input("g", {{6, 3}, DType::f32});
  Sym w = g.param("w", {{3, width}, DType::f32});
  Sym x = g.input("x", {{6, width}, DType::f32});
  Attrs tanh_form;
  tanh_form.gelu_tanh = true;
  Sym dx = emit(OpId::gelu_backward, {x, matmul(gr, w)}, tanh_form);
  PlanOptions options;
  options.backends = {&limited, &backend_registry().reference()};
  return plan_graph(g, {dx}, options);
}

TEST(ShapeLimits, AStepABackendRefusesStaysUnfusedOnIt) {
  DgeluLimitedBackend limited;
  auto kernels = [](const Plan& plan) {
    std::vector<std::string> out;
    for (const PlanStep& s : plan.steps)
      if (s.kind == StepKind::Kernel)
        out.push_back(fmt::format("{} on {}", op_name(s.op), s.backend->name()));
    return out;
  };
  EXPECT_EQ(kernels(plan_gelu_grad(limited, 16)),
            (std::vector<std::string>{"matmul_dact on dgelu-limited"}));
  // Not fused onto ref either: fusing must not move the product off the backend that runs it.
  EXPECT_EQ(
      kernels(plan_gelu_grad(limited, 12)),
      (std::vector<std::string>{"matmul on dgelu-limited", "gelu_backward on dgelu-limited"}));
}

TEST(ShapeLimits, SupportsAndRunSeeShapesAndAttributes) {
  DgeluLimitedBackend limited;
  Attrs gelu_tanh;
  gelu_tanh.activation = Activation::gelu;
  gelu_tanh.gelu_tanh = true;
  auto query = [&](int64_t width, const Attrs& attrs) {
    return OpQuery{OpId::matmul_dact,
                   {{{6, 3}, DType::f32}, {{3, width}, DType::f32}, {{6, width}, DType::f32}},
                   {{6, width}, DType::f32},
                   attrs};
  };
  EXPECT_TRUE(
      limited.supports(OpId::matmul_dact, DType::f32));  // the cheap table does not see shapes
  EXPECT_TRUE(limited.supports(query(16, gelu_tanh)));
  EXPECT_FALSE(limited.supports(query(12, gelu_tanh)));
  Attrs relu;
  relu.activation = Activation::relu;
  EXPECT_TRUE(limited.supports(query(12, relu)));
  EXPECT_FALSE(limited.supports(
      OpQuery{OpId::exp, {{{2}, DType::f32}}, {{2}, DType::f32}, {}}));  // no kernel

  const Tensor a = Tensor::empty({6, 3}, DType::f32), b = Tensor::empty({3, 12}, DType::f32),
               x = Tensor::empty({6, 12}, DType::f32);
  DgeluLimitedBackend::calls = 0;
  try {
    run_op(limited, OpId::matmul_dact, {a, b, x}, gelu_tanh);
    ADD_FAILURE() << "run() ran a call the shape limit refuses";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported) << e.what();
  }
  EXPECT_EQ(DgeluLimitedBackend::calls, 0);
  run_op(limited, OpId::matmul_dact, {a, b, x}, relu);
  EXPECT_EQ(DgeluLimitedBackend::calls, 1);
}

}  // namespace
}  // namespace gpuml
