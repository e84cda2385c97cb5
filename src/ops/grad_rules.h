// Gradient rules: for each differentiable op, the vector-Jacobian product written with other
// ops (ops/build.h), so autodiff is a graph transform and every backend gets gradients for free.
//
//   GradInputs g = grad_rule(OpId::mul, node_inputs, {node_output}, {upstream}, attrs);
//   // g[0] = upstream * b (reduced to a's shape), g[1] = upstream * a
#pragma once

#include <optional>
#include <vector>

#include "ops/build.h"

namespace gpuml {

using GradInputs = std::vector<std::optional<Sym>>;  // one per op input; nullopt: no gradient
using Upstreams = std::vector<std::optional<Sym>>;   // one per op output; nullopt: no gradient

// outputs: every output of the node (one for most ops); upstreams: one gradient per output,
// nullopt for an output nothing differentiates (a rule skips its terms rather than multiplying
// zeros; a one-output op always gets its one). Throws Unsupported for an op that is not
// differentiable.
GradInputs grad_rule(OpId op, const std::vector<Sym>& inputs, const std::vector<Sym>& outputs,
                     const Upstreams& upstreams, const Attrs& attrs);

// Which inputs of `op` carry gradients at all (labels, indices and running stats do not).
bool input_is_differentiable(OpId op, int input_index);

}  // namespace gpuml
