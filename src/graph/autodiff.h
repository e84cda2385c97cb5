// Reverse-mode autodiff as a graph transform: the backward nodes are appended to the same graph,
// built from each op's gradient rule (ops/grad_rules.h), so the planner and executor treat the
// backward pass like any other part of the graph.
//
//   Graph g;
//   Sym x = g.input("x", {{8, 4}, DType::f64});
//   Sym w = g.param("w", {{4, 3}, DType::f64});
//   Sym loss = mean(relu(matmul(x, w)));
//   std::vector<Sym> grads = gradients(g, loss, {w});   // grads[0]: dloss/dw, shape (4, 3)
#pragma once

#include <vector>

#include "graph/graph.h"

namespace gpuml {

// d loss / d wrt[i] for each i. `loss` must be a floating scalar (shape ()); the seed is fill(1).
// Only nodes on a path from some wrt to loss are differentiated; contributions from several uses
// are summed. A wrt that loss does not depend on gets zeros of its shape. Gradients flow only
// through floating values and differentiable op inputs (labels, indices, masks get none).
std::vector<Sym> gradients(Graph& graph, Sym loss, const std::vector<Sym>& wrt);

}  // namespace gpuml
