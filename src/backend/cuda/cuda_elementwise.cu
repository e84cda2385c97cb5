// Elementwise kernels: unary, binary (broadcast through strides), compare, where, cast, the one
// strided copy, arange/fill and gelu_backward. Each walks the output's row-major index space and
// reads its operands at their own strides (stride 0 broadcasts), as the kernel contract asks.
// Unary, binary and cast have a dense path for operands laid out in that order (no index
// arithmetic); unary and binary load and store 16 bytes at a time there when aligned.
#include "backend/cuda/cuda_device.cuh"

namespace gpuml::cuda {

namespace {

template <typename A>
__device__ A gelu_value(A x, bool tanh_form) {
  if (tanh_form) {
    const A k = A(0.7978845608028654);  // sqrt(2/pi)
    return A(0.5) * x * (A(1) + tanh(k * (x + A(0.044715) * x * x * x)));
  }
  return A(0.5) * x * (A(1) + erf(x * A(0.7071067811865476)));
}

template <typename A>
__device__ A unary_value(UnaryOp op, A x, bool gelu_tanh) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::abs: return fabs(x);  // clears the sign of -0.0, as ref's fabs
    case UnaryOp::sign: return x > A(0) ? A(1) : (x < A(0) ? A(-1) : x);  // sign(NaN) = NaN
    case UnaryOp::exp: return exp(x);
    case UnaryOp::log: return log(x);
    case UnaryOp::sqrt: return sqrt(x);
    case UnaryOp::rsqrt: return A(1) / sqrt(x);
    case UnaryOp::tanh: return tanh(x);
    case UnaryOp::sigmoid: return A(1) / (A(1) + exp(-x));
    case UnaryOp::relu: return x < A(0) ? A(0) : x;
    case UnaryOp::gelu: return gelu_value(x, gelu_tanh);
  }
  return x;
}

template <typename T>
__global__ void unary_kernel(UnaryOp op, StridedView x, T* out, Layout layout, bool gelu_tanh) {
  const T* in = static_cast<const T*>(x.data);
  GPUML_GRID_STRIDE(i, layout.numel) {
    out[i] = from_acc<T>(unary_value(op, to_acc(in[strided_offset(i, layout, x.strides)]), gelu_tanh));
  }
}

// Dense operands (is_dense): element i at offset i. With `vectorized` (every pointer 16-byte
// aligned) the body runs over 16-byte packs and a scalar tail; otherwise over single elements.
template <typename T>
__global__ void unary_dense_kernel(UnaryOp op, const T* in, T* out, int64_t n, bool gelu_tanh, bool vectorized) {
  constexpr int V = Pack<T>::kSize;
  const int64_t packs = vectorized ? n / V : 0;
  GPUML_GRID_STRIDE(p, packs) {
    Pack<T> x = reinterpret_cast<const Pack<T>*>(in)[p];
#pragma unroll
    for (int k = 0; k < V; ++k) x.v[k] = from_acc<T>(unary_value(op, to_acc(x.v[k]), gelu_tanh));
    reinterpret_cast<Pack<T>*>(out)[p] = x;
  }
  GPUML_GRID_STRIDE(j, n - packs * V) {
    const int64_t i = packs * V + j;
    out[i] = from_acc<T>(unary_value(op, to_acc(in[i]), gelu_tanh));
  }
}

template <typename A>
__device__ A binary_value(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow: return pow(a, b);
    // NaN propagates, as PyTorch's maximum/minimum.
    case BinaryOp::maximum: return (a != a || b != b) ? a + b : (a > b ? a : b);
    case BinaryOp::minimum: return (a != a || b != b) ? a + b : (a < b ? a : b);
    case BinaryOp::relu_backward: return a > A(0) ? b : A(0);
  }
  return a;
}

template <typename T>
__global__ void binary_kernel(BinaryOp op, StridedView a, StridedView b, T* out, Layout layout) {
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  GPUML_GRID_STRIDE(i, layout.numel) {
    Acc<T> va = to_acc(pa[strided_offset(i, layout, a.strides)]);
    Acc<T> vb = to_acc(pb[strided_offset(i, layout, b.strides)]);
    out[i] = from_acc<T>(binary_value(op, va, vb));
  }
}

template <typename T>
__global__ void binary_dense_kernel(BinaryOp op, const T* a, const T* b, T* out, int64_t n, bool vectorized) {
  constexpr int V = Pack<T>::kSize;
  const int64_t packs = vectorized ? n / V : 0;
  GPUML_GRID_STRIDE(p, packs) {
    Pack<T> x = reinterpret_cast<const Pack<T>*>(a)[p];
    const Pack<T> y = reinterpret_cast<const Pack<T>*>(b)[p];
#pragma unroll
    for (int k = 0; k < V; ++k) x.v[k] = from_acc<T>(binary_value(op, to_acc(x.v[k]), to_acc(y.v[k])));
    reinterpret_cast<Pack<T>*>(out)[p] = x;
  }
  GPUML_GRID_STRIDE(j, n - packs * V) {
    const int64_t i = packs * V + j;
    out[i] = from_acc<T>(binary_value(op, to_acc(a[i]), to_acc(b[i])));
  }
}

template <typename T>
__global__ void compare_kernel(CompareOp op, StridedView a, StridedView b, bool* out, Layout layout) {
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  GPUML_GRID_STRIDE(i, layout.numel) {
    double va = to_f64(pa[strided_offset(i, layout, a.strides)]);
    double vb = to_f64(pb[strided_offset(i, layout, b.strides)]);
    bool r = false;
    switch (op) {
      case CompareOp::eq: r = va == vb; break;
      case CompareOp::ne: r = va != vb; break;
      case CompareOp::lt: r = va < vb; break;
      case CompareOp::le: r = va <= vb; break;
      case CompareOp::gt: r = va > vb; break;
      case CompareOp::ge: r = va >= vb; break;
    }
    out[i] = r;
  }
}

template <typename T>
__global__ void where_kernel(StridedView cond, StridedView a, StridedView b, T* out, Layout layout) {
  const bool* pc = static_cast<const bool*>(cond.data);
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  GPUML_GRID_STRIDE(i, layout.numel) {
    out[i] = pc[strided_offset(i, layout, cond.strides)] ? pa[strided_offset(i, layout, a.strides)]
                                                         : pb[strided_offset(i, layout, b.strides)];
  }
}

// Through double, as the reference backend: float -> int truncates, -> bool is != 0, bf16/f16
// round to nearest even (from float, as ref rounds double -> float -> half).
template <typename From, typename To>
__device__ __forceinline__ To cast_value(From x) {
  double v = to_f64(x);
  if constexpr (std::is_same_v<To, bool>) return v != 0.0;
  else if constexpr (std::is_same_v<To, __nv_bfloat16> || std::is_same_v<To, __half>) return from_acc<To>(static_cast<float>(v));
  else if constexpr (std::is_integral_v<To>) return wrap_int<To>(v);
  else return static_cast<To>(v);
}

// `dense`: x walks the layout in order (is_dense), so element i is at offset i.
template <typename From, typename To>
__global__ void cast_kernel(StridedView x, To* out, Layout layout, bool dense) {
  const From* in = static_cast<const From*>(x.data);
  if (dense) {
    GPUML_GRID_STRIDE(i, layout.numel) { out[i] = cast_value<From, To>(in[i]); }
  } else {
    GPUML_GRID_STRIDE(i, layout.numel) { out[i] = cast_value<From, To>(in[strided_offset(i, layout, x.strides)]); }
  }
}

// Moves whole elements as unsigned integers of their size: one kernel per size, any dtype.
template <typename Word>
__global__ void strided_copy_kernel(StridedView src, StridedView dst, Layout layout) {
  const Word* s = static_cast<const Word*>(src.data);
  Word* d = static_cast<Word*>(dst.data);
  GPUML_GRID_STRIDE(i, layout.numel) {
    d[strided_offset(i, layout, dst.strides)] = s[strided_offset(i, layout, src.strides)];
  }
}

template <typename T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  GPUML_GRID_STRIDE(i, n) {
    double v = start + static_cast<double>(i) * step;
    if constexpr (std::is_same_v<T, bool>) out[i] = v != 0.0;
    else if constexpr (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>) out[i] = from_acc<T>(static_cast<float>(v));
    else if constexpr (std::is_integral_v<T>) out[i] = wrap_int<T>(v);
    else out[i] = static_cast<T>(v);
  }
}

template <typename A>
__device__ A gelu_derivative(A x, bool tanh_form) {
  if (tanh_form) {
    const A k = A(0.7978845608028654), c = A(0.044715);
    A t = tanh(k * (x + c * x * x * x));
    return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3) * c * x * x);
  }
  const A inv_sqrt_2pi = A(0.3989422804014327);
  return A(0.5) * (A(1) + erf(x * A(0.7071067811865476))) + x * inv_sqrt_2pi * exp(A(-0.5) * x * x);
}

template <typename T>
__global__ void gelu_backward_kernel(StridedView x, StridedView dy, T* dx, Layout layout, bool gelu_tanh) {
  const T* px = static_cast<const T*>(x.data);
  const T* pdy = static_cast<const T*>(dy.data);
  GPUML_GRID_STRIDE(i, layout.numel) {
    Acc<T> v = to_acc(px[strided_offset(i, layout, x.strides)]);
    dx[i] = from_acc<T>(to_acc(pdy[strided_offset(i, layout, dy.strides)]) * gelu_derivative(v, gelu_tanh));
  }
}

template <typename T>
__global__ void channel_bias_act_kernel(T* y, const T* bias, int64_t total, int64_t channels, int64_t plane,
                                        int activation, bool gelu_tanh) {
  GPUML_GRID_STRIDE(i, total) {
    Acc<T> v = to_acc(y[i]) + to_acc(bias[(i / plane) % channels]);
    if (activation == 1) v = v < Acc<T>(0) ? Acc<T>(0) : v;
    else if (activation == 2) v = gelu_value(v, gelu_tanh);
    y[i] = from_acc<T>(v);
  }
}

// One 32-bit word of the mask per thread: bits b of word w in row i stand for column 32 w + b.
template <typename T>
__global__ void relu_mask_kernel(const T* y, uint32_t* mask, int64_t rows, int64_t cols, int64_t words_per_row) {
  GPUML_GRID_STRIDE(w, rows * words_per_row) {
    const int64_t row = w / words_per_row, first = (w % words_per_row) * 32;
    const T* in = y + row * cols;
    uint32_t bits = 0;
    for (int b = 0; b < 32 && first + b < cols; ++b)
      if (to_acc(in[first + b]) > Acc<T>(0)) bits |= 1u << b;
    mask[w] = bits;
  }
}

}  // namespace

void launch_relu_mask(ElemType t, const void* y, void* mask, int64_t rows, int64_t cols, int64_t ld_bits,
                      cudaStream_t stream) {
  const int64_t words = rows * (ld_bits / 32);
  if (words == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    relu_mask_kernel<T><<<blocks_for(words), kThreads, 0, stream>>>(static_cast<const T*>(y),
                                                                      static_cast<uint32_t*>(mask), rows, cols,
                                                                      ld_bits / 32);
  });
  check_launch("relu mask");
}

void launch_channel_bias_act(ElemType t, void* y, const void* bias, int64_t n, int64_t channels, int64_t plane,
                             int activation, bool gelu_tanh, cudaStream_t stream) {
  const int64_t total = n * channels * plane;
  if (total == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    channel_bias_act_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<T*>(y), static_cast<const T*>(bias), total, channels, plane, activation, gelu_tanh);
  });
  check_launch("conv2d_bias_act");
}

void launch_unary(UnaryOp op, ElemType t, const StridedView& x, void* out, const Layout& layout, bool gelu_tanh,
                  cudaStream_t stream) {
  if (layout.numel == 0) return;
  const bool dense = is_dense(x, layout);
  const bool vectorized = dense && is_aligned16(x.data) && is_aligned16(out);
  dispatch_elem(t, [&]<typename T>(T) {
    if constexpr (!std::is_same_v<T, bool>) {
      if (dense)
        unary_dense_kernel<T><<<blocks_for(vectorized ? layout.numel / Pack<T>::kSize + 1 : layout.numel), kThreads, 0,
                                stream>>>(op, static_cast<const T*>(x.data), static_cast<T*>(out), layout.numel,
                                          gelu_tanh, vectorized);
      else
        unary_kernel<T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(op, x, static_cast<T*>(out), layout,
                                                                           gelu_tanh);
    }
  });
  check_launch("unary");
}

void launch_binary(BinaryOp op, ElemType t, const StridedView& a, const StridedView& b, void* out,
                   const Layout& layout, cudaStream_t stream) {
  if (layout.numel == 0) return;
  const bool dense = is_dense(a, layout) && is_dense(b, layout);
  const bool vectorized = dense && is_aligned16(a.data) && is_aligned16(b.data) && is_aligned16(out);
  dispatch_elem(t, [&]<typename T>(T) {
    if (dense)
      binary_dense_kernel<T><<<blocks_for(vectorized ? layout.numel / Pack<T>::kSize + 1 : layout.numel), kThreads, 0,
                               stream>>>(op, static_cast<const T*>(a.data), static_cast<const T*>(b.data),
                                         static_cast<T*>(out), layout.numel, vectorized);
    else
      binary_kernel<T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(op, a, b, static_cast<T*>(out), layout);
  });
  check_launch("binary");
}

void launch_compare(CompareOp op, ElemType t, const StridedView& a, const StridedView& b, bool* out,
                    const Layout& layout, cudaStream_t stream) {
  if (layout.numel == 0) return;
  dispatch_elem(t, [&]<typename T>(T) {
    compare_kernel<T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(op, a, b, out, layout);
  });
  check_launch("compare");
}

void launch_where(ElemType t, const StridedView& cond, const StridedView& a, const StridedView& b, void* out,
                  const Layout& layout, cudaStream_t stream) {
  if (layout.numel == 0) return;
  dispatch_elem(t, [&]<typename T>(T) {
    where_kernel<T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(cond, a, b, static_cast<T*>(out), layout);
  });
  check_launch("where");
}

void launch_cast(ElemType from, ElemType to, const StridedView& x, void* out, const Layout& layout,
                 cudaStream_t stream) {
  if (layout.numel == 0) return;
  dispatch_elem(from, [&]<typename F>(F) {
    dispatch_elem(to, [&]<typename T>(T) {
      cast_kernel<F, T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(x, static_cast<T*>(out), layout,
                                                                             is_dense(x, layout));
    });
  });
  check_launch("cast");
}

void launch_strided_copy(int elem_bytes, const StridedView& src, const StridedView& dst, const Layout& layout,
                         cudaStream_t stream) {
  if (layout.numel == 0) return;
  const unsigned blocks = blocks_for(layout.numel);
  switch (elem_bytes) {
    case 1: strided_copy_kernel<uint8_t><<<blocks, kThreads, 0, stream>>>(src, dst, layout); break;
    case 2: strided_copy_kernel<uint16_t><<<blocks, kThreads, 0, stream>>>(src, dst, layout); break;
    case 4: strided_copy_kernel<uint32_t><<<blocks, kThreads, 0, stream>>>(src, dst, layout); break;
    case 8: strided_copy_kernel<uint64_t><<<blocks, kThreads, 0, stream>>>(src, dst, layout); break;
    default: throw std::runtime_error("strided copy: unsupported element size " + std::to_string(elem_bytes));
  }
  check_launch("strided copy");
}

void launch_arange(ElemType t, void* out, int64_t n, double start, double step, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_elem(t, [&]<typename T>(T) {
    arange_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<T*>(out), n, start, step);
  });
  check_launch("arange");
}

void launch_gelu_backward(ElemType t, const StridedView& x, const StridedView& dy, void* dx, const Layout& layout,
                          bool gelu_tanh, cudaStream_t stream) {
  if (layout.numel == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    gelu_backward_kernel<T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(x, dy, static_cast<T*>(dx), layout,
                                                                                gelu_tanh);
  });
  check_launch("gelu_backward");
}

}  // namespace gpuml::cuda
