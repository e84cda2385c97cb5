// Internal to the reference backend: the few helpers every ref kernel is written with.
//
// A ref kernel reads its inputs as float64 in logical row-major order (whatever their strides,
// 0 strides of broadcasting included), computes in float64 and writes the contiguous output:
//
//   void relu_kernel(const KernelCall& c) {
//     std::vector<double> x = load(c.inputs[0]);
//     for (double& v : x) v = v < 0 ? 0.0 : v;
//     store(c.output, x);
//   }
//
// Views (Tensor::permute/slice/broadcast_to/transpose) express movement; load() and store()
// walk any view with the one strided iteration, for_each_offset().
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "ops/attrs.h"

namespace gpuml::ref {

// Visits every element of `shape` in row-major order: visit(i, offsets) with i the row-major
// index and offsets[k] = sum over dims of index[d] * strides[k][d], one offset per operand.
// Any strides work (negative, 0 for broadcast dims). Nothing is visited when shape has a 0 dim.
template <typename Visit>
void for_each_offset(const Shape& shape, const std::vector<Strides>& strides, Visit&& visit) {
  const int64_t total = numel(shape);
  const int ndim = static_cast<int>(shape.size());
  const size_t operands = strides.size();
  std::vector<int64_t> index(ndim, 0);
  std::vector<int64_t> offsets(operands, 0);
  for (int64_t i = 0; i < total; ++i) {
    visit(i, std::span<const int64_t>(offsets));
    // Odometer step: bump the last dim; a dim that wraps resets and carries into the previous one.
    for (int d = ndim - 1; d >= 0; --d) {
      ++index[d];
      for (size_t k = 0; k < operands; ++k) offsets[k] += strides[k][d];
      if (index[d] < shape[d]) break;
      for (size_t k = 0; k < operands; ++k) offsets[k] -= strides[k][d] * shape[d];
      index[d] = 0;
    }
  }
}

// double -> element. Floats round to nearest even (from_double); bool is `!= 0`; integers follow
// C: truncate toward zero, then wrap to the width of T (so u8 3 - 5 = 254). NaN and +-inf, which
// C leaves undefined, become 0 and the i64 extremes.
template <typename T>
T to_element(double v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (std::isnan(v)) return T{0};
    if (v >= 9.2233720368547758e18) return static_cast<T>(std::numeric_limits<int64_t>::max());
    if (v <= -9.2233720368547758e18) return static_cast<T>(std::numeric_limits<int64_t>::min());
    return static_cast<T>(static_cast<int64_t>(v));
  } else {
    return from_double<T>(v);
  }
}

// The elements of a host tensor (any view) as doubles, in logical row-major order.
inline std::vector<double> load(const Tensor& t) {
  std::vector<double> values(static_cast<size_t>(t.numel()));
  dispatch_dtype(t.dtype(), [&]<typename T>(T) {
    const T* base = static_cast<const T*>(t.raw_data());
    for_each_offset(t.shape(), {t.strides()}, [&](int64_t i, std::span<const int64_t> off) {
      values[i] = to_double(base[off[0]]);
    });
  });
  return values;
}

// `t` read as if broadcast to `shape` (NumPy rules).
inline std::vector<double> load_broadcast(const Tensor& t, const Shape& shape) {
  return load(t.broadcast_to(shape));
}

// Writes `values` (logical row-major) into `t` through its strides, converting with to_element.
inline void store(const Tensor& t, std::span<const double> values) {
  dispatch_dtype(t.dtype(), [&]<typename T>(T) {
    T* base = static_cast<T*>(t.raw_data());
    for_each_offset(t.shape(), {t.strides()}, [&](int64_t i, std::span<const int64_t> off) {
      base[off[0]] = to_element<T>(values[i]);
    });
  });
}

inline void store_constant(const Tensor& t, double value) {
  store(t, std::vector<double>(static_cast<size_t>(t.numel()), value));
}

// Product of shape[begin, end): sizes of the outer/axis/inner blocks around an axis.
inline int64_t dims_product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t d = begin; d < end; ++d) n *= shape[d];
  return n;
}

// The dtypes a kernel is registered for, mirroring the type rules (ops/type_rules.cpp).
inline constexpr DType kFloatDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};
inline constexpr DType kNumericDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                           DType::i32, DType::i64, DType::u8};
inline constexpr DType kEveryDType[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                        DType::i32, DType::i64, DType::u8,   DType::boolean};
inline constexpr DType kIndexDTypes[] = {DType::i32, DType::i64};
inline constexpr DType kBoolDType[] = {DType::boolean};

// The activations that matmul_bias_act applies after its bias (ref_elementwise.cpp), the same
// scalar functions as the relu and gelu kernels.
double activation_fn(Activation act, bool gelu_tanh_form, double x);
// An activation's backward, as relu_backward, gelu_backward and matmul_dact compute it: relu's
// from its output (dy where aux > 0, else 0), gelu's from its input (dy * gelu'(aux)).
double activation_backward_fn(Activation act, bool gelu_tanh_form, double aux, double dy);

// One row of a family's registration list. `dtypes` is keyed like Backend::supports: the first
// input's dtype (the output's for creation ops).
struct KernelEntry {
  OpId op;
  KernelFn fn;
  std::span<const DType> dtypes;
};

// One list per op family file.
std::vector<KernelEntry> elementwise_kernels();  // ref_elementwise.cpp
std::vector<KernelEntry> reduce_kernels();       // ref_reduce.cpp
std::vector<KernelEntry> matmul_conv_kernels();  // ref_matmul_conv.cpp
std::vector<KernelEntry> pool_kernels();         // ref_pool.cpp
std::vector<KernelEntry> norm_loss_kernels();    // ref_norm_loss.cpp
std::vector<KernelEntry> movement_kernels();     // ref_movement.cpp (also gather and creation)
std::vector<KernelEntry> random_kernels();       // ref_random.cpp
std::vector<KernelEntry> optim_kernels();        // ref_optim.cpp
std::vector<KernelEntry> attention_kernels();    // ref_attention.cpp
std::vector<KernelEntry> collective_kernels();   // ref_collective.cpp

}  // namespace gpuml::ref
