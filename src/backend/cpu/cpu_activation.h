// The activations of the cpu backend as scalar functions of the compute type C (float for
// f32/bf16/f16, double for f64): gelu in both forms and its derivative, and the activation that
// matmul_bias_act applies after its bias. cpu_elementwise.cpp and cpu_matmul.cpp share them.
//
//   float y = gelu_fn(x, /*tanh_form*/ false);
//   double z = activation_fn(Activation::relu, false, -2.0);  // 0
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <type_traits>

#include "ops/attrs.h"

namespace gpuml::cpu {

inline constexpr double kSqrt2OverPi = 0.7978845608028654;
inline constexpr double kGeluCubic = 0.044715;

// exp(x) for float without a libm call, branch-free so that loops over it vectorise (a GPT step
// spent 30% of its time in libm's tanhf/expm1f through gelu). x must lie in [-87, 88] (the caller
// clamps: a clamp in here keeps GCC from vectorising the loop). k = round(x / ln 2) by the
// 1.5 * 2^23 rounding trick, whose low mantissa bits then hold k as an integer; r = x - k ln 2 in
// two parts (Cody-Waite); exp(r) by its degree-6 Taylor polynomial (|r| <= ln 2 / 2: relative
// error below 3e-7, about 2 ulp), times 2^k put into the exponent bits.
inline float exp_f32(float x) {
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float k = shifted - 12582912.0f;
  const int32_t ki = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(12582912.0f);
  const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187045e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((ki + 127) << 23);
}

// tanh(u) = 1 - 2 / (exp(2|u|) + 1) with u's sign, |u| clamped to 10, where the formula already
// gives exactly 1 in float. Absolute error about 1e-7 (for tiny u the result is u within that,
// not within 1 ulp). A NaN gives +-1: gelu, its one user, still gives NaN through its x factor.
inline float tanh_f32(float u) {
  // min(|u|, 10) on the bits (for non-negative floats their order as integers): a float select
  // here keeps GCC from vectorising the loop, as a clamp in exp_f32 would.
  const int32_t bits = std::bit_cast<int32_t>(std::fabs(u)), ten = std::bit_cast<int32_t>(10.0f);
  const float clamped = std::bit_cast<float>(bits < ten ? bits : ten);
  return std::copysign(1.0f - 2.0f / (exp_f32(2.0f * clamped) + 1.0f), u);
}

template <typename C>
inline C tanh_c(C u) {
  if constexpr (std::is_same_v<C, float>) return tanh_f32(u);
  else return std::tanh(u);
}

template <typename C>
inline C gelu_fn(C x, bool tanh_form) {
  if (tanh_form) return C(0.5) * x * (C(1) + tanh_c(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x)));
  return C(0.5) * x * (C(1) + std::erf(x * C(1.0 / std::numbers::sqrt2)));
}

template <typename C>
inline C gelu_grad(C x, bool tanh_form) {
  if (tanh_form) {
    C t = tanh_c(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x));
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
