// The fusion passes, one file each (graph/fusion.h says what a pass reads and returns). Each
// file opens with the pass's preconditions; fusion_passes() (graph/fusion.cpp) lists them in order.
#pragma once

#include "graph/fusion.h"

namespace gpuml {

// act(add(matmul or conv2d, bias)) -> matmul_bias_act / conv2d_bias_act
// (passes/bias_activation.cpp).
Fusions fuse_bias_activation(const FusionInput& in, const std::vector<bool>& taken);
// relu_backward / gelu_backward of a product -> matmul_dact (passes/activation_backward.cpp).
Fusions fuse_activation_backward(const FusionInput& in, const std::vector<bool>& taken);
// A weight-gradient matmul beside its bias's gradient row sum -> matmul_bgrad
// (passes/bias_gradient.cpp).
Fusions fuse_bias_gradient(const FusionInput& in, const std::vector<bool>& taken);

}  // namespace gpuml
