// Each fusion pass on its own (graph/passes/): what it claims, and that it leaves alone the nodes
// an earlier pass took (its `taken` input), which the order of fusion_passes() relies on; and
// that merging claims refuses a node claimed twice.
#include <gtest/gtest.h>

#include <string>

#include "graph/fusion.h"
#include "graph/passes/passes.h"

namespace gpuml {
namespace {

std::vector<bool> all_needed(const Graph& g) {
  return std::vector<bool>(g.size(), true);
}

Placement cpu_then_ref() {
  return Placement({&backend_registry().get("cpu"), &backend_registry().reference()});
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

}  // namespace
}  // namespace gpuml
