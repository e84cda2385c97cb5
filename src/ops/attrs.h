// Attributes of an op node: one plain struct, each op reads the fields its table row names.
// Defaults follow PyTorch.
//
//   Attrs a;  a.axes = {1};  a.keepdim = true;       // sum over axis 1
//   Attrs c = conv_attrs(/*stride*/ 1, /*padding*/ 1);
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"

namespace gpuml {

// matmul_bias_act, conv2d_bias_act: what follows the bias add (gelu reads gelu_tanh for its form);
// matmul_dact: whose derivative multiplies the product.
enum class Activation : uint8_t { none, relu, gelu };

struct Attrs {
  // Reductions (empty = all axes), permute order, slice axes.
  std::vector<int64_t> axes;
  bool keepdim = false;
  // softmax/log_softmax/argmax/concat axis; layer_norm: first normalised axis (through the last).
  int64_t axis = -1;
  // reshape/broadcast_to target, creation output shape, backward ops' input shape.
  Shape shape;
  DType dtype = DType::f32;  // cast target, creation dtype
  double value = 0.0;        // fill value, pad value
  double alpha = 0.0;        // arange start, uniform low, normal mean
  double beta = 1.0;         // arange step, uniform high, normal std
  bool trans_a = false, trans_b = false;  // matmul: use A^T / B^T (last two dims)
  std::array<int64_t, 2> kernel{1, 1};    // pooling window (H, W)
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};   // symmetric, per spatial dim
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool count_include_pad = true;  // avg_pool2d
  double eps = 1e-5;              // layer_norm, batch_norm, adam_update (optim sets 1e-8)
  double p = 0.5;                 // dropout probability of zeroing (attention: of a probability)
  bool training = true;           // dropout, batch_norm, attention (its dropout applies only when training)
  uint64_t seed = 0, offset = 0;  // Philox stream for random ops
  int64_t ignore_index = -100;    // cross_entropy
  bool gelu_tanh = false;         // gelu: tanh approximation instead of erf
  bool causal = false;            // attention: query i sees keys j <= i + Tk - Tq only
  double scale = 0.0;             // attention: scores = q k^T * scale; 0 means 1/sqrt(D)
  Activation activation = Activation::none;  // matmul_bias_act, conv2d_bias_act, matmul_dact
  // matmul, conv2d and its backward ops on f32: TF32 tensor cores allowed (10-bit mantissa
  // inputs, f32 accumulation). Set by the planner (PlanOptions::allow_tf32), not by graph builders.
  bool allow_tf32 = false;
  // Kernels with a faster non-deterministic form (cuDNN convolution algorithms, atomic
  // scatter-adds) take the deterministic one. Set by the planner (PlanOptions::deterministic).
  bool deterministic = false;
  std::vector<int64_t> starts, ends, steps;  // slice, per entry of `axes`
  std::vector<int64_t> pads;                 // pad: (before, after) per dim, dim 0 first
  // Optimizer updates (sgd_update, adam_update), with torch.optim's meaning and defaults.
  double momentum = 0.0;               // sgd: 0 = plain SGD (state has 1 row), else 2 rows
  bool nesterov = false;               // sgd: needs momentum > 0
  double weight_decay = 0.0;           // L2 added to the gradient, or decoupled (AdamW)
  double beta1 = 0.9, beta2 = 0.999;   // adam: decay of the first and second moments
  bool decoupled_weight_decay = false; // adam: AdamW (p *= 1 - lr * wd before the step, no L2)
};

}  // namespace gpuml
