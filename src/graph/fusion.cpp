#include "graph/fusion.h"

#include "core/error.h"
#include "graph/passes/passes.h"
#include "ops/type_rules.h"

namespace gpuml {

Shape fused_bias_shape(OpId op, const TensorType& out) {
  return Shape{op == OpId::conv2d_bias_act ? out.shape[1] : out.shape.back()};
}

OpQuery fused_query(const Graph& graph, int id, const FusedStep& step) {
  const TensorType& out = graph.type_of(id);
  TensorType extra = graph.type_of(step.extra);
  if (step.op != OpId::matmul_dact) extra.shape = fused_bias_shape(step.op, out);
  return OpQuery{step.op, {graph.type_of(step.a), graph.type_of(step.b), extra}, out, step.attrs};
}

OpQuery bgrad_query(const Graph& graph, const BgradPair& pair) {
  OpQuery q = query_of_node(graph, pair.matmul);
  q.op = OpId::matmul_bgrad;
  q.attrs.axis = pair.axis;
  q.output = infer_types(OpId::matmul_bgrad, q.inputs, q.attrs)[0];
  return q;
}

FusionInput::FusionInput(const Graph& g, const std::vector<bool>& needed_nodes,
                         const std::vector<Sym>& outputs, const Placement& where)
    : graph(g), needed(needed_nodes), uses(g.size(), 0), user(g.size(), -1), placement(where) {
  for (int id = 0; id < graph.size(); ++id)
    if (needed[id])
      for (int in : graph.node(id).inputs) ++uses[in], user[in] = id;
  for (const Sym& s : outputs) ++uses[s.id];  // an output is also read after the last step
}

bool FusionInput::is_op(int id, OpId op) const {
  return id >= 0 && graph.node(id).role == NodeRole::Op && graph.node(id).op == op;
}

bool FusionInput::is_2d_matmul(int id) const {
  return is_op(id, OpId::matmul) && graph.type_of(graph.node(id).inputs[0]).shape.size() == 2 &&
         graph.type_of(graph.node(id).inputs[1]).shape.size() == 2;
}

void FusionPlan::merge(const Fusions& claims, const char* pass) {
  // Claim by claim, so that a pass overlapping itself is caught too.
  auto check_free = [&](int id, const char* as) {
    GPUML_CHECK_KIND(ErrorKind::Internal,
                     !absorbed[id] && !steps.contains(id) && !bgrad_pairs.contains(id),
                     "fusion pass {}: graph node {} ({}) is already claimed", pass, id, as);
  };
  for (const auto& [id, step] : claims.steps) {
    check_free(id, "a fused step's result");
    steps.emplace(id, step);
  }
  for (const auto& [id, pair] : claims.bgrad_pairs) {
    check_free(id, "a matmul_bgrad pair");
    bgrad_pairs.emplace(id, pair);
  }
  for (int id : claims.absorbed) {
    check_free(id, "computed inside a fused step");
    absorbed[id] = true;
  }
}

// Order matters only through `taken`: the activation-backward pass leaves products inside a
// bias step alone, and the bias-gradient pass leaves matmuls inside either earlier step alone.
std::span<const FusionPassEntry> fusion_passes() {
  static constexpr FusionPassEntry kPasses[] = {
      {"bias_activation", fuse_bias_activation},
      {"activation_backward", fuse_activation_backward},
      {"bias_gradient", fuse_bias_gradient},
  };
  return kPasses;
}

FusionPlan find_fusions(const FusionInput& in) {
  FusionPlan plan;
  plan.absorbed.assign(in.graph.size(), false);
  for (const FusionPassEntry& pass : fusion_passes())
    plan.merge(pass.run(in, plan.absorbed), pass.name);
  return plan;
}

}  // namespace gpuml
