// Pass activation_backward: relu_backward(y, matmul(a, b)) or gelu_backward(x, matmul(a, b)) (the
// gradient g W reaching an activation from the next layer) -> one matmul_dact step (cuBLASLt's
// DRELU / DGELU epilogue; elsewhere the product and the backward in place, the same numbers).
//
// Preconditions, per backward node:
//  - its second input is a matmul of two matrices of the backward's type, read by nothing else
//    (not an output, not even as this backward's aux); its aux (relu's output, gelu's input) is
//    of the same type;
//  - the product is not `taken`: a step of an earlier pass must not lose the value it computes;
//  - the backend that would run the matmul also runs the matmul_dact step (its dtype, and its
//    shapes and attributes where the backend limits them: CUDA's DGELU needs n % 8 == 0).
// Returns steps keyed on the backward node and absorbs the product.
#include "graph/passes/passes.h"

namespace gpuml {

Fusions fuse_activation_backward(const FusionInput& in, const std::vector<bool>& taken) {
  Fusions out;
  const Graph& graph = in.graph;
  for (int id = 0; id < graph.size(); ++id) {
    const bool relu_grad = in.is_op(id, OpId::relu_backward);
    if (!in.needed[id] || (!relu_grad && !in.is_op(id, OpId::gelu_backward))) continue;
    const Node& r = graph.node(id);
    const int product = r.inputs[1], aux = r.inputs[0];
    if (!in.is_2d_matmul(product) || taken[product] || in.uses[product] != 1) continue;
    const Node& m = graph.node(product);
    if (m.type != r.type || graph.type_of(aux) != r.type) continue;
    Attrs attrs = m.attrs;
    attrs.activation = relu_grad ? Activation::relu : Activation::gelu;
    attrs.gelu_tanh = r.attrs.gelu_tanh;
    const FusedStep step{OpId::matmul_dact, m.inputs[0], m.inputs[1], aux, attrs};
    if (!in.placement.fuses_in_place(fused_query(graph, id, step), query_of_node(graph, product)))
      continue;
    out.absorbed.push_back(product);
    out.steps[id] = step;
  }
  return out;
}

}  // namespace gpuml
