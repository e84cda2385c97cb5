// Pass bias_activation: act(add(producer, bias)) -> one matmul_bias_act or conv2d_bias_act step
// (cuBLASLt's BIAS / RELU_BIAS / GELU_BIAS epilogues, cuDNN's fused convolution).
//
// Preconditions, per chain:
//  - the producer is a matmul of two matrices with an (N,) bias, or a conv2d with a per-channel
//    bias ((O, 1, 1) or (1, O, 1, 1), as nn::Conv2d adds it), of the add's dtype and type;
//  - the product is read by the add only (not an output): the fused step never writes it;
//  - the activation (relu or gelu) joins only if it is the sum's one reader (in training gelu's
//    backward reads the sum, so only the bias fuses there);
//  - the backend that would run the unfused producer also runs the fused step (its dtype, and its
//    shapes and attributes where the backend limits them), so fusing never moves work elsewhere.
// Reads nothing of `taken`: it runs first. Returns steps keyed on the chain's last node (the
// activation, or the add) and absorbs the producer and, with an activation, the add.
#include <optional>

#include "graph/passes/passes.h"
#include "ops/type_rules.h"

namespace gpuml {

namespace {

// The fused step for add(producer, bias) with the producer on `side` of the add, if the shapes
// fit (where it runs is asked once the activation is known).
std::optional<FusedStep> match_bias_add(const FusionInput& in, int add_id, int side) {
  const Graph& graph = in.graph;
  const Node& add = graph.node(add_id);
  const int producer = add.inputs[side], bias = add.inputs[1 - side];
  const Node& p = graph.node(producer);
  if (p.role != NodeRole::Op || in.uses[producer] != 1 || p.type != add.type) return std::nullopt;
  const TensorType& tbias = graph.type_of(bias);
  if (tbias.dtype != add.type.dtype) return std::nullopt;
  OpId fused_op;
  if (p.op == OpId::matmul) {
    if (!in.is_2d_matmul(producer)) return std::nullopt;
    MatmulDims d =
        matmul_dims(graph.type_of(p.inputs[0]).shape, graph.type_of(p.inputs[1]).shape, p.attrs);
    if (d.k == 0 || tbias.shape != Shape{d.n}) return std::nullopt;
    fused_op = OpId::matmul_bias_act;
  } else if (p.op == OpId::conv2d) {
    const int64_t o = add.type.shape[1];
    if (tbias.shape != Shape{1, o, 1, 1} && tbias.shape != Shape{o, 1, 1}) return std::nullopt;
    fused_op = OpId::conv2d_bias_act;
  } else {
    return std::nullopt;
  }
  return FusedStep{fused_op, p.inputs[0], p.inputs[1], bias, p.attrs};
}

}  // namespace

Fusions fuse_bias_activation(const FusionInput& in, const std::vector<bool>& /*taken*/) {
  Fusions out;
  for (int id = 0; id < in.graph.size(); ++id) {
    if (!in.needed[id] || !in.is_op(id, OpId::add)) continue;
    for (int side = 0; side < 2; ++side) {
      std::optional<FusedStep> f = match_bias_add(in, id, side);
      if (!f) continue;
      int last = id;
      const int next = in.user[id];
      const bool with_activation =
          in.uses[id] == 1 && (in.is_op(next, OpId::relu) || in.is_op(next, OpId::gelu));
      if (with_activation) {
        f->attrs.activation = in.is_op(next, OpId::relu) ? Activation::relu : Activation::gelu;
        f->attrs.gelu_tanh = in.graph.node(next).attrs.gelu_tanh;
        last = next;
      }
      const int producer = in.graph.node(id).inputs[side];
      if (!in.placement.fuses_in_place(fused_query(in.graph, last, *f),
                                       query_of_node(in.graph, producer)))
        continue;
      if (with_activation) out.absorbed.push_back(id);
      out.absorbed.push_back(producer);
      out.steps[last] = *f;
      break;
    }
  }
  return out;
}

}  // namespace gpuml
