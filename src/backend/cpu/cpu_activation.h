// The activations of the cpu backend as scalar functions of the compute type C (float for
// f32/bf16/f16, double for f64): gelu in both forms and its derivative, and the activation that
// matmul_bias_act applies after its bias. cpu_elementwise.cpp and cpu_matmul.cpp share them.
//
//   float y = gelu_fn(x, /*tanh_form*/ false);
//   double z = activation_fn(Activation::relu, false, -2.0);  // 0
#pragma once

#include <cmath>
#include <numbers>

#include "ops/attrs.h"

namespace gpuml::cpu {

inline constexpr double kSqrt2OverPi = 0.7978845608028654;
inline constexpr double kGeluCubic = 0.044715;

template <typename C>
inline C gelu_fn(C x, bool tanh_form) {
  if (tanh_form) return C(0.5) * x * (C(1) + std::tanh(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x)));
  return C(0.5) * x * (C(1) + std::erf(x * C(1.0 / std::numbers::sqrt2)));
}

template <typename C>
inline C gelu_grad(C x, bool tanh_form) {
  if (tanh_form) {
    C t = std::tanh(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x));
    C du = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCubic) * x * x);
    return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * du;
  }
  C cdf = C(0.5) * (C(1) + std::erf(x * C(1.0 / std::numbers::sqrt2)));
  C pdf = std::exp(C(-0.5) * x * x) * C(1.0 / std::sqrt(2.0 * std::numbers::pi));
  return cdf + x * pdf;
}

// NaN stays NaN through relu (NaN < 0 is false), as in the relu kernel and PyTorch.
template <typename C>
inline C activation_fn(Activation act, bool gelu_tanh_form, C x) {
  switch (act) {
    case Activation::relu: return x < C(0) ? C(0) : x;
    case Activation::gelu: return gelu_fn(x, gelu_tanh_form);
    case Activation::none: break;
  }
  return x;
}

}  // namespace gpuml::cpu
