// Elementwise ops as OpenMP loops: unary math, binary arithmetic and comparisons with NumPy
// broadcasting, where, cast, gelu/gelu_backward, relu_backward, fill and arange. bf16/f16 compute
// in float.
// The strided loop merges dims, so a contiguous op is one long vectorisable row and a bias add
// is rows against one contiguous bias row.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_activation.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

template <OpId Op, typename C>
inline C unary_fn(C x) {
  if constexpr (Op == OpId::neg) return -x;
  else if constexpr (Op == OpId::abs) return x < C(0) ? C(-x) : x;
  else if constexpr (Op == OpId::sign) return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x);
  else if constexpr (Op == OpId::exp) return std::exp(x);
  else if constexpr (Op == OpId::log) return std::log(x);
  else if constexpr (Op == OpId::sqrt) return std::sqrt(x);
  else if constexpr (Op == OpId::rsqrt) return C(1) / std::sqrt(x);
  else if constexpr (Op == OpId::tanh) return std::tanh(x);
  else if constexpr (Op == OpId::sigmoid) return C(1) / (C(1) + std::exp(-x));
  else if constexpr (Op == OpId::relu) return x < C(0) ? C(0) : x;
  else static_assert(Op == OpId::neg, "not a unary op");
}

template <OpId Op, typename C>
inline auto binary_fn(C a, C b) {
  if constexpr (Op == OpId::add) return C(a + b);
  else if constexpr (Op == OpId::sub) return C(a - b);
  else if constexpr (Op == OpId::mul) return C(a * b);
  else if constexpr (Op == OpId::div) {
    if constexpr (std::is_integral_v<C>) {
      // ref divides in double: x/0 is +-inf or NaN, stored as the i64 extremes or 0.
      if (b == 0) return from_double_wrapping<C>(static_cast<double>(a) / 0.0);
      return C(a / b);
    } else {
      return C(a / b);
    }
  } else if constexpr (Op == OpId::pow) return C(std::pow(a, b));
  else if constexpr (Op == OpId::maximum) {
    if constexpr (std::is_floating_point_v<C>) return (a != a || b != b) ? C(a + b) : (a > b ? a : b);
    else return a > b ? a : b;
  } else if constexpr (Op == OpId::minimum) {
    if constexpr (std::is_floating_point_v<C>) return (a != a || b != b) ? C(a + b) : (a < b ? a : b);
    else return a < b ? a : b;
  }
  else if constexpr (Op == OpId::eq) return a == b;
  else if constexpr (Op == OpId::ne) return a != b;
  else if constexpr (Op == OpId::lt) return a < b;
  else if constexpr (Op == OpId::le) return a <= b;
  else if constexpr (Op == OpId::gt) return a > b;
  else if constexpr (Op == OpId::ge) return a >= b;
  else static_assert(Op == OpId::add, "not a binary op");
}

// out = f(x) elementwise; x any view of out's shape, out contiguous.
template <typename T, typename R, typename F>
void map_unary(const Tensor& x, const Tensor& out, F f) {
  StridedLoop<2> loop = make_strided_loop<2>(out.shape(), {out.strides(), x.strides()});
  const T* px = ptr<const T>(x);
  R* po = ptr<R>(out);
  for_each_row(loop, [&](int64_t n, const Offsets<2>& off, const Offsets<2>& step) {
    R* o = po + off[0];
    const T* in = px + off[1];
    if (step[1] == 1) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) o[k] = f(in[k]);
    } else {
      for (int64_t k = 0; k < n; ++k) o[k] = f(in[k * step[1]]);
    }
  });
}

// out = f(a, b) with a and b broadcast to out's shape. Rows where one side is a scalar (stride 0)
// get their own loop so that the common bias/scalar cases vectorise.
template <typename T, typename R, typename F>
void map_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  const Shape& shape = out.shape();
  StridedLoop<3> loop = make_strided_loop<3>(
      shape, {out.strides(), broadcast_strides(a.shape(), a.strides(), shape),
              broadcast_strides(b.shape(), b.strides(), shape)});
  const T* pa = ptr<const T>(a);
  const T* pb = ptr<const T>(b);
  R* po = ptr<R>(out);
  for_each_row(loop, [&](int64_t n, const Offsets<3>& off, const Offsets<3>& step) {
    R* o = po + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (step[1] == 1 && step[2] == 1) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) o[k] = f(x[k], y[k]);
    } else if (step[1] == 1 && step[2] == 0) {
      const T yv = *y;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) o[k] = f(x[k], yv);
    } else if (step[1] == 0 && step[2] == 1) {
      const T xv = *x;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) o[k] = f(xv, y[k]);
    } else {
      for (int64_t k = 0; k < n; ++k) o[k] = f(x[k * step[1]], y[k * step[2]]);
    }
  });
}

template <OpId Op>
void unary_kernel(const KernelCall& call) {
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    if constexpr (!std::is_same_v<T, bool>)
      map_unary<T, T>(call.inputs[0], call.output, [](T v) { return store<T>(unary_fn<Op>(load(v))); });
  });
}

// GELU's tanh form, bf16 add/sub/mul and the f32 <-> bf16 casts over contiguous arrays, compiled
// again for AVX2 + FMA and for AVX-512 and chosen at run time (the build targets baseline x86-64,
// SSE2): 8 or 16 floats an instruction and fused multiply-adds. A GPT's MLP spends a tenth of its
// step in gelu; in bf16 the casts of mixed precision (weights to bf16 each step, activations to f32
// for norms and losses) cost as much. The loops below are the baseline build's inline helpers,
// inlined into the wide functions (the baseline is a subset), so every path uses one formula and bf16's one
// rounding (bf16::from_float, round to nearest even); FMA contraction changes gelu's last bits,
// not its accuracy, and the casts are exact as ref's.
inline float widen(float v) { return v; }
inline float widen(bf16 v) { return v.to_float(); }
template <typename T>
inline T narrow(float v) {
  if constexpr (std::is_same_v<T, bf16>) return bf16::from_float(v);
  else return v;
}
template <typename S, typename D>
[[gnu::always_inline]] inline void convert_loop(const S* x, D* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) y[i] = narrow<D>(widen(x[i]));
}
[[gnu::always_inline]] inline void gelu_tanh_loop(const float* x, float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) y[i] = gelu_fn(x[i], true);
}
[[gnu::always_inline]] inline void gelu_tanh_backward_loop(const float* x, const float* dy, float* dx,
                                                           int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * gelu_grad(x[i], true);
}
// bf16 through float chunks that stay in L1: widened, the float loop, narrowed. One fused loop
// (load, gelu, round per element) runs out of vector registers and measured 1.4x slower.
constexpr int64_t kChunk = 256;
[[gnu::always_inline]] inline void gelu_tanh_loop(const bf16* x, bf16* y, int64_t begin, int64_t end) {
  float buffer[kChunk];
  for (int64_t b = begin; b < end; b += kChunk) {
    const int64_t n = std::min(kChunk, end - b);
    convert_loop(x + b, buffer, 0, n);
    gelu_tanh_loop(buffer, buffer, 0, n);
    convert_loop(buffer, y + b, 0, n);
  }
}
[[gnu::always_inline]] inline void gelu_tanh_backward_loop(const bf16* x, const bf16* dy, bf16* dx, int64_t begin,
                                                           int64_t end) {
  float xs[kChunk], dys[kChunk];
  for (int64_t b = begin; b < end; b += kChunk) {
    const int64_t n = std::min(kChunk, end - b);
    convert_loop(x + b, xs, 0, n);
    convert_loop(dy + b, dys, 0, n);
    gelu_tanh_backward_loop(xs, dys, xs, 0, n);
    convert_loop(xs, dx + b, 0, n);
  }
}
// add, sub or mul of two bf16 arrays through float chunks, as gelu: the residual adds of a GPT in
// bf16 and the gradients summed where a value has several consumers.
template <OpId Op>
[[gnu::always_inline]] inline void binary_loop(const bf16* a, const bf16* b, bf16* y, int64_t begin, int64_t end) {
  float xa[kChunk], xb[kChunk];
  for (int64_t c = begin; c < end; c += kChunk) {
    const int64_t n = std::min(kChunk, end - c);
    convert_loop(a + c, xa, 0, n);
    convert_loop(b + c, xb, 0, n);
    for (int64_t i = 0; i < n; ++i) xa[i] = binary_fn<Op, float>(xa[i], xb[i]);
    convert_loop(xa, y + c, 0, n);
  }
}

// The loops above, compiled for each wide target, in a namespace of its name.
#define GPUML_WIDE_LOOPS                                                                        \
template <OpId Op>                                                                              \
void binary(const bf16* a, const bf16* b, bf16* y, int64_t begin, int64_t end) {                \
  binary_loop<Op>(a, b, y, begin, end);                                                         \
}                                                                                               \
template void binary<OpId::add>(const bf16*, const bf16*, bf16*, int64_t, int64_t);             \
template void binary<OpId::sub>(const bf16*, const bf16*, bf16*, int64_t, int64_t);             \
template void binary<OpId::mul>(const bf16*, const bf16*, bf16*, int64_t, int64_t);             \
void gelu_tanh(const float* x, float* y, int64_t b, int64_t e) { gelu_tanh_loop(x, y, b, e); }  \
void gelu_tanh(const bf16* x, bf16* y, int64_t b, int64_t e) { gelu_tanh_loop(x, y, b, e); }    \
void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t b, int64_t e) {     \
  gelu_tanh_backward_loop(x, dy, dx, b, e);                                                     \
}                                                                                               \
void gelu_tanh_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t b, int64_t e) {        \
  gelu_tanh_backward_loop(x, dy, dx, b, e);                                                     \
}                                                                                               \
void convert(const float* x, bf16* y, int64_t b, int64_t e) { convert_loop(x, y, b, e); }       \
void convert(const bf16* x, float* y, int64_t b, int64_t e) { convert_loop(x, y, b, e); }
GPUML_BEGIN_AVX2
namespace avx2 {
GPUML_WIDE_LOOPS
}  // namespace avx2
GPUML_END_TARGET
GPUML_BEGIN_AVX512
namespace avx512 {
GPUML_WIDE_LOOPS
}  // namespace avx512
GPUML_END_TARGET
#undef GPUML_WIDE_LOOPS
// fn(args) from the widest copy this CPU runs (the caller checked has_avx2_fma()).
#define GPUML_WIDE_CALL(fn, ...) (has_avx512() ? avx512::fn(__VA_ARGS__) : avx2::fn(__VA_ARGS__))

// True when the AVX2 loops apply: every operand contiguous and of one shape, every input of
// `in_type`, the output of `out_type`.
bool wide_loop(const KernelCall& call, DType in_type, DType out_type) {
  if (call.output.dtype() != out_type || !call.output.is_contiguous() || !has_avx2_fma()) return false;
  for (const Tensor& in : call.inputs)
    if (in.dtype() != in_type || !in.is_contiguous() || in.shape() != call.output.shape()) return false;
  return true;
}

// gelu (x) -> y or its backward (x, dy) -> dx, tanh form, on T (float or bf16), all contiguous.
template <typename T>
void run_wide_gelu(const KernelCall& call, bool backward) {
  const int64_t n = call.output.numel();
  const T* x = ptr<const T>(call.inputs[0]);
  T* out = ptr<T>(call.output);
  if (backward) {
    const T* dy = ptr<const T>(call.inputs[1]);
    parallel_for(n, n, [&](int64_t b, int64_t e) { GPUML_WIDE_CALL(gelu_tanh_backward, x, dy, out, b, e); });
  } else {
    parallel_for(n, n, [&](int64_t b, int64_t e) { GPUML_WIDE_CALL(gelu_tanh, x, out, b, e); });
  }
}

// gelu and its backward in the tanh form on f32 or bf16: the AVX2 loops when they apply. The form
// is chosen outside the loops: with erf's libm call in the same loop body, the tanh form would not
// vectorise either.
bool wide_gelu(const KernelCall& call, bool backward) {
  if (!call.attrs.gelu_tanh) return false;
  if (wide_loop(call, DType::f32, DType::f32)) run_wide_gelu<float>(call, backward);
  else if (wide_loop(call, DType::bf16, DType::bf16)) run_wide_gelu<bf16>(call, backward);
  else return false;
  return true;
}

// f32 <-> bf16 (S to D) on contiguous arrays: mixed precision's casts.
template <typename S, typename D>
bool wide_convert(const KernelCall& call) {
  if (!wide_loop(call, DTypeOf<S>::value, DTypeOf<D>::value)) return false;
  const int64_t n = call.output.numel();
  const S* x = ptr<const S>(call.inputs[0]);
  D* y = ptr<D>(call.output);
  parallel_for(n, n, [&](int64_t b, int64_t e) { GPUML_WIDE_CALL(convert, x, y, b, e); });
  return true;
}

void gelu_kernel(const KernelCall& call) {
  if (wide_gelu(call, false)) return;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    if constexpr (!std::is_integral_v<T>) {
      if (call.attrs.gelu_tanh)
        map_unary<T, T>(call.inputs[0], call.output, [](T v) { return store<T>(gelu_fn(load(v), true)); });
      else
        map_unary<T, T>(call.inputs[0], call.output, [](T v) { return store<T>(gelu_fn(load(v), false)); });
    }
  });
}

void gelu_backward_kernel(const KernelCall& call) {  // (x, dy) -> dy * gelu'(x)
  if (wide_gelu(call, true)) return;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    if constexpr (!std::is_integral_v<T>) {
      if (call.attrs.gelu_tanh)
        map_binary<T, T>(call.inputs[0], call.inputs[1], call.output,
                         [](T x, T dy) { return store<T>(load(dy) * gelu_grad(load(x), true)); });
      else
        map_binary<T, T>(call.inputs[0], call.inputs[1], call.output,
                         [](T x, T dy) { return store<T>(load(dy) * gelu_grad(load(x), false)); });
    }
  });
}

// relu_backward(y, dy) -> dy where y > 0 else 0: one pass, a select the compiler vectorises.
void relu_backward_kernel(const KernelCall& call) {
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    // Captures nothing: a zero read through the closure would be a conditional load, which
    // keeps GCC from turning the select into a vector blend (measured 20x slower).
    if constexpr (!std::is_same_v<T, bool>)
      map_binary<T, T>(call.inputs[0], call.inputs[1], call.output,
                       [](T y, T dy) { return load(y) > Compute<T>(0) ? dy : store<T>(Compute<T>(0)); });
  });
}

template <OpId Op>
void binary_kernel(const KernelCall& call) {
  if constexpr (Op == OpId::add || Op == OpId::sub || Op == OpId::mul) {
    if (wide_loop(call, DType::bf16, DType::bf16)) {  // bf16 operands of one shape: the AVX2 loop
      const int64_t n = call.output.numel();
      const bf16 *a = ptr<const bf16>(call.inputs[0]), *b = ptr<const bf16>(call.inputs[1]);
      bf16* y = ptr<bf16>(call.output);
      parallel_for(n, n, [&](int64_t begin, int64_t end) { GPUML_WIDE_CALL(binary<Op>, a, b, y, begin, end); });
      return;
    }
  }
  dispatch_dtype(call.inputs[0].dtype(), [&]<typename T>(T) {
    using C = Compute<T>;
    if constexpr (kOpInfos[static_cast<int>(Op)].kind == OpKind::Compare) {
      map_binary<T, bool>(call.inputs[0], call.inputs[1], call.output,
                          [](T a, T b) { return binary_fn<Op, C>(load(a), load(b)); });
    } else if constexpr (!std::is_same_v<T, bool> || Op == OpId::maximum || Op == OpId::minimum) {
      map_binary<T, T>(call.inputs[0], call.inputs[1], call.output,
                       [](T a, T b) { return store<T>(binary_fn<Op, C>(load(a), load(b))); });
    }
  });
}

// where(cond, a, b), all three broadcast to the output shape; keyed on cond (bool).
void where_kernel(const KernelCall& call) {
  const Tensor &cond = call.inputs[0], &a = call.inputs[1], &b = call.inputs[2], &out = call.output;
  const Shape& shape = out.shape();
  dispatch_dtype(out.dtype(), [&]<typename T>(T) {
    StridedLoop<4> loop = make_strided_loop<4>(
        shape, {out.strides(), broadcast_strides(cond.shape(), cond.strides(), shape),
                broadcast_strides(a.shape(), a.strides(), shape), broadcast_strides(b.shape(), b.strides(), shape)});
    const bool* pc = ptr<const bool>(cond);
    const T* pa = ptr<const T>(a);
    const T* pb = ptr<const T>(b);
    T* po = ptr<T>(out);
    for_each_row(loop, [&](int64_t n, const Offsets<4>& off, const Offsets<4>& step) {
      for (int64_t k = 0; k < n; ++k)
        po[off[0] + k] = pc[off[1] + k * step[1]] ? pa[off[2] + k * step[2]] : pb[off[3] + k * step[3]];
    });
  });
}

// cast converts through double exactly as ref does (truncation, wrapping, round to nearest even).
// f32 <-> bf16 on contiguous arrays (mixed precision's casts) take the AVX2 loops, with the same
// rounding.
void cast_kernel(const KernelCall& call) {
  if (wide_convert<float, bf16>(call) || wide_convert<bf16, float>(call)) return;
  dispatch_dtype(call.inputs[0].dtype(), [&]<typename S>(S) {
    dispatch_dtype(call.output.dtype(), [&]<typename D>(D) {
      map_unary<S, D>(call.inputs[0], call.output, [](S v) { return from_double_wrapping<D>(to_double(v)); });
    });
  });
}

void fill_kernel(const KernelCall& call) { fill_value(call.output, call.attrs.value); }

void arange_kernel(const KernelCall& call) {
  const double start = call.attrs.alpha, step = call.attrs.beta;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    T* po = ptr<T>(call.output);
    int64_t n = call.output.numel();
    parallel_for(n, n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) po[i] = from_double_wrapping<T>(start + static_cast<double>(i) * step);
    });
  });
}

constexpr std::initializer_list<DType> kFloat{DType::f32, DType::f64, DType::bf16, DType::f16};
constexpr std::initializer_list<DType> kNumeric{DType::f32, DType::f64, DType::bf16, DType::f16,
                                                DType::i32, DType::i64, DType::u8};
constexpr std::initializer_list<DType> kEvery{DType::f32, DType::f64, DType::bf16, DType::f16,
                                              DType::i32, DType::i64, DType::u8,   DType::boolean};

}  // namespace

void register_elementwise_kernels(CpuBackend& backend) {
  backend.add_kernel(OpId::neg, unary_kernel<OpId::neg>, kNumeric);
  backend.add_kernel(OpId::abs, unary_kernel<OpId::abs>, kNumeric);
  backend.add_kernel(OpId::sign, unary_kernel<OpId::sign>, kNumeric);
  backend.add_kernel(OpId::relu, unary_kernel<OpId::relu>, kNumeric);
  backend.add_kernel(OpId::exp, unary_kernel<OpId::exp>, kFloat);
  backend.add_kernel(OpId::log, unary_kernel<OpId::log>, kFloat);
  backend.add_kernel(OpId::sqrt, unary_kernel<OpId::sqrt>, kFloat);
  backend.add_kernel(OpId::rsqrt, unary_kernel<OpId::rsqrt>, kFloat);
  backend.add_kernel(OpId::tanh, unary_kernel<OpId::tanh>, kFloat);
  backend.add_kernel(OpId::sigmoid, unary_kernel<OpId::sigmoid>, kFloat);
  backend.add_kernel(OpId::gelu, gelu_kernel, kFloat);
  backend.add_kernel(OpId::gelu_backward, gelu_backward_kernel, kFloat);
  backend.add_kernel(OpId::relu_backward, relu_backward_kernel, kNumeric);
  backend.add_kernel(OpId::cast, cast_kernel, kEvery);
  backend.add_kernel(OpId::add, binary_kernel<OpId::add>, kNumeric);
  backend.add_kernel(OpId::sub, binary_kernel<OpId::sub>, kNumeric);
  backend.add_kernel(OpId::mul, binary_kernel<OpId::mul>, kNumeric);
  backend.add_kernel(OpId::div, binary_kernel<OpId::div>, kNumeric);
  backend.add_kernel(OpId::pow, binary_kernel<OpId::pow>, kFloat);
  backend.add_kernel(OpId::maximum, binary_kernel<OpId::maximum>, kEvery);
  backend.add_kernel(OpId::minimum, binary_kernel<OpId::minimum>, kEvery);
  backend.add_kernel(OpId::eq, binary_kernel<OpId::eq>, kEvery);
  backend.add_kernel(OpId::ne, binary_kernel<OpId::ne>, kEvery);
  backend.add_kernel(OpId::lt, binary_kernel<OpId::lt>, kEvery);
  backend.add_kernel(OpId::le, binary_kernel<OpId::le>, kEvery);
  backend.add_kernel(OpId::gt, binary_kernel<OpId::gt>, kEvery);
  backend.add_kernel(OpId::ge, binary_kernel<OpId::ge>, kEvery);
  backend.add_kernel(OpId::where, where_kernel, {DType::boolean});
  backend.add_kernel(OpId::fill, fill_kernel, kEvery);
  backend.add_kernel(OpId::arange, arange_kernel, kNumeric);
}

}  // namespace gpuml::cpu
