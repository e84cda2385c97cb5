// Pass bias_gradient: matmul(g, x, trans_a) (an nn::Linear weight's gradient g^T x) or
// matmul(x, g, trans_a) (x^T g) beside sum(g, axes {0}) (its bias's gradient) -> one matmul_bgrad
// step. Both reduce over g's rows, which cuBLASLt's BGRAD epilogue does while it computes the
// product; the step's two outputs are the two graph values.
//
// Preconditions, per pair:
//  - the matmul multiplies two matrices with g as its transposed first operand (trans_a) or its
//    untransposed second; the sum is over axis 0 of the 2-d g, without keepdim, of the matmul's
//    dtype; each sum pairs with at most one matmul (the first by graph order);
//  - the matmul is not `taken`: a product inside a matmul_dact or bias step is gone;
//  - both matmul inputs are computed before the earlier of the two nodes, where the step runs;
//  - the backend that would run the matmul also runs the matmul_bgrad step (its dtype, and its
//    shapes and attributes where the backend limits them).
// Returns pairs keyed on the earlier node and absorbs the later one.
#include <algorithm>

#include "graph/passes/passes.h"

namespace gpuml {

namespace {

// g -> the needed sums over its rows, in graph order.
std::map<int, std::vector<int>> row_sums_by_operand(const FusionInput& in) {
  std::map<int, std::vector<int>> row_sums;
  for (int id = 0; id < in.graph.size(); ++id) {
    if (!in.needed[id] || !in.is_op(id, OpId::sum)) continue;
    const Node& s = in.graph.node(id);
    const std::vector<int64_t>& axes = s.attrs.axes;
    if (in.graph.type_of(s.inputs[0]).shape.size() == 2 && !s.attrs.keepdim && axes.size() == 1 &&
        (axes[0] == 0 || axes[0] == -2))
      row_sums[s.inputs[0]].push_back(id);
  }
  return row_sums;
}

}  // namespace

Fusions fuse_bias_gradient(const FusionInput& in, const std::vector<bool>& taken) {
  Fusions out;
  std::map<int, std::vector<int>> row_sums = row_sums_by_operand(in);
  for (int id = 0; id < in.graph.size(); ++id) {
    if (!in.needed[id] || taken[id] || !in.is_2d_matmul(id)) continue;
    const Node& m = in.graph.node(id);
    const DType dtype = m.type.dtype;
    for (int axis = 0; axis < 2; ++axis) {
      const int g = m.inputs[axis];
      auto candidates = row_sums.find(g);
      if ((axis == 0 ? !m.attrs.trans_a : m.attrs.trans_b) || candidates == row_sums.end() ||
          candidates->second.empty())
        continue;
      const int sum = candidates->second.front();
      // Planned at the first of the two: every input must be there by then.
      const int first = std::min(id, sum);
      if (in.graph.node(sum).type.dtype != dtype || m.inputs[0] >= first || m.inputs[1] >= first)
        continue;
      const BgradPair pair{id, sum, axis};
      if (!in.placement.fuses_in_place(bgrad_query(in.graph, pair), query_of_node(in.graph, id)))
        continue;
      candidates->second.erase(candidates->second.begin());
      out.bgrad_pairs[first] = pair;
      out.absorbed.push_back(std::max(id, sum));
      break;
    }
  }
  return out;
}

}  // namespace gpuml
