// Pooling (+ backward), embedding (+ scatter-add backward) and the Philox draws (dropout,
// uniform, normal). Pool backward kernels gather (one thread per dx element, visiting the windows
// that cover it) rather than scatter with atomics, so they are deterministic.
#include "backend/cuda/cuda_device.cuh"
#include "core/philox.h"

namespace gpuml::cuda {

namespace {

// The flat x index of the FIRST maximum of output element (plane, oh, ow)'s window, row-major tap
// order, padded taps skipped, a NaN counting as the maximum; -1 when no tap is in bounds.
template <typename T>
__device__ int64_t window_argmax(const T* x, const PoolParams& p, int64_t plane, int64_t oh, int64_t ow) {
  int64_t best = -1;
  double best_v = 0.0;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
    if (ih < 0 || ih >= p.h) continue;
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
      if (iw < 0 || iw >= p.w) continue;
      const int64_t xi = (plane * p.h + ih) * p.w + iw;
      const double v = to_f64(x[xi]);
      if (best < 0 || (v != v && best_v == best_v) || v > best_v) {
        best = xi;
        best_v = v;
      }
    }
  }
  return best;
}

template <typename T>
__global__ void max_pool_kernel(const T* x, T* y, PoolParams p) {
  GPUML_GRID_STRIDE(i, p.n * p.c * p.oh * p.ow) {
    const int64_t ow = i % p.ow, oh = (i / p.ow) % p.oh, plane = i / (p.ow * p.oh);
    const int64_t arg = window_argmax(x, p, plane, oh, ow);
    y[i] = arg < 0 ? from_acc<T>(static_cast<Acc<T>>(-INFINITY)) : x[arg];
  }
}

// Calls visit(oh, ow) for every output whose window has a tap at input (ih, iw).
template <typename Visit>
__device__ void for_each_covering_output(const PoolParams& p, int64_t ih, int64_t iw, Visit&& visit) {
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t th = ih + p.ph - kh * p.dh;
    if (th < 0 || th % p.sh != 0 || th / p.sh >= p.oh) continue;
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      const int64_t tw = iw + p.pw - kw * p.dw;
      if (tw < 0 || tw % p.sw != 0 || tw / p.sw >= p.ow) continue;
      visit(th / p.sh, tw / p.sw);
    }
  }
}

template <typename T>
__global__ void max_pool_backward_kernel(const T* x, const T* dy, T* dx, PoolParams p) {
  GPUML_GRID_STRIDE(i, p.n * p.c * p.h * p.w) {
    const int64_t iw = i % p.w, ih = (i / p.w) % p.h, plane = i / (p.w * p.h);
    double acc = 0.0;
    for_each_covering_output(p, ih, iw, [&](int64_t oh, int64_t ow) {
      if (window_argmax(x, p, plane, oh, ow) == i) acc += to_f64(dy[(plane * p.oh + oh) * p.ow + ow]);
    });
    dx[i] = from_acc<T>(static_cast<Acc<T>>(acc));
  }
}

__device__ double pool_divisor(const PoolParams& p, int64_t oh, int64_t ow) {
  if (p.count_include_pad) return static_cast<double>(p.kh * p.kw);
  int64_t count = 0;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
      count += ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
    }
  }
  return static_cast<double>(count);
}

template <typename T>
__global__ void avg_pool_kernel(const T* x, T* y, PoolParams p) {
  GPUML_GRID_STRIDE(i, p.n * p.c * p.oh * p.ow) {
    const int64_t ow = i % p.ow, oh = (i / p.ow) % p.oh, plane = i / (p.ow * p.oh);
    double acc = 0.0;
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
      if (ih < 0 || ih >= p.h) continue;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
        if (iw >= 0 && iw < p.w) acc += to_f64(x[(plane * p.h + ih) * p.w + iw]);
      }
    }
    y[i] = from_acc<T>(static_cast<Acc<T>>(acc / pool_divisor(p, oh, ow)));
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, PoolParams p) {
  GPUML_GRID_STRIDE(i, p.n * p.c * p.h * p.w) {
    const int64_t iw = i % p.w, ih = (i / p.w) % p.h, plane = i / (p.w * p.h);
    double acc = 0.0;
    for_each_covering_output(p, ih, iw, [&](int64_t oh, int64_t ow) {
      acc += to_f64(dy[(plane * p.oh + oh) * p.ow + ow]) / pool_divisor(p, oh, ow);
    });
    dx[i] = from_acc<T>(static_cast<Acc<T>>(acc));
  }
}

__device__ __forceinline__ int64_t index_at(const void* idx, bool i64, int64_t r) {
  return i64 ? static_cast<const int64_t*>(idx)[r] : static_cast<const int32_t*>(idx)[r];
}

template <typename T>
__global__ void embedding_kernel(const T* weight, const void* idx, bool i64, T* out, int64_t n, int64_t vocab,
                                 int64_t d, int64_t* bad_index) {
  GPUML_GRID_STRIDE(i, n * d) {
    const int64_t row = i / d;
    const int64_t v = index_at(idx, i64, row);
    if (v < 0 || v >= vocab) {
      atomicMin(reinterpret_cast<unsigned long long*>(bad_index), static_cast<unsigned long long>(row));
      out[i] = T{};
    } else {
      out[i] = weight[v * d + i % d];
    }
  }
}

template <typename T>
__global__ void embedding_backward_kernel(const void* idx, bool i64, const T* dy, T* dw, int64_t n,
                                          int64_t vocab, int64_t d) {
  GPUML_GRID_STRIDE(i, n * d) {
    const int64_t v = index_at(idx, i64, i / d);
    if (v >= 0 && v < vocab) atomicAdd(&dw[v * d + i % d], dy[i]);
  }
}

// The deterministic form (--deterministic): one thread per feature column adds the rows in index
// order, so every run sums in the same order. Less parallel (d threads) than the atomic form.
template <typename T>
__global__ void embedding_backward_ordered_kernel(const void* idx, bool i64, const T* dy, T* dw, int64_t n,
                                                  int64_t vocab, int64_t d) {
  GPUML_GRID_STRIDE(j, d) {
    for (int64_t r = 0; r < n; ++r) {
      const int64_t v = index_at(idx, i64, r);
      if (v >= 0 && v < vocab) dw[v * d + j] += dy[r * d + j];
    }
  }
}

template <typename T>
__global__ void dropout_kernel(StridedView x, T* out, Layout layout, double p, uint64_t seed, uint64_t base,
                               const uint64_t* offset_slot) {
  const T* in = static_cast<const T*>(x.data);
  const uint64_t offset = base + (offset_slot != nullptr ? *offset_slot : 0);
  GPUML_GRID_STRIDE(i, layout.numel) {
    const bool keep = philox_uniform(seed, offset, static_cast<uint64_t>(i)) >= p;
    const double v = to_f64(in[strided_offset(i, layout, x.strides)]);
    out[i] = from_acc<T>(static_cast<Acc<T>>(keep ? v / (1.0 - p) : 0.0));  // divided, as CPU and ref
  }
}

template <typename T>
__global__ void random_kernel(bool normal, T* out, int64_t n, double a, double b, uint64_t seed, uint64_t base,
                              const uint64_t* offset_slot) {
  const uint64_t offset = base + (offset_slot != nullptr ? *offset_slot : 0);
  GPUML_GRID_STRIDE(i, n) {
    const uint64_t k = static_cast<uint64_t>(i);
    // Explicit roundings: nvcc would fuse a + b * x into one FMA, which the CPU build does not.
    const double v = normal ? __dadd_rn(a, __dmul_rn(b, philox_normal(seed, offset, k)))
                            : __dadd_rn(a, __dmul_rn(b - a, static_cast<double>(philox_uniform(seed, offset, k))));
    out[i] = from_acc<T>(static_cast<Acc<T>>(v));
  }
}

}  // namespace

void launch_max_pool(ElemType t, const void* x, void* y, const PoolParams& p, cudaStream_t stream) {
  const int64_t n = p.n * p.c * p.oh * p.ow;
  if (n == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    max_pool_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), p);
  });
  check_launch("max_pool2d");
}

void launch_max_pool_backward(ElemType t, const void* x, const void* dy, void* dx, const PoolParams& p,
                              cudaStream_t stream) {
  const int64_t n = p.n * p.c * p.h * p.w;
  if (n == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    max_pool_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(x),
                                                                        static_cast<const T*>(dy), static_cast<T*>(dx), p);
  });
  check_launch("max_pool2d_backward");
}

void launch_avg_pool(ElemType t, const void* x, void* y, const PoolParams& p, cudaStream_t stream) {
  const int64_t n = p.n * p.c * p.oh * p.ow;
  if (n == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    avg_pool_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), p);
  });
  check_launch("avg_pool2d");
}

void launch_avg_pool_backward(ElemType t, const void* dy, void* dx, const PoolParams& p, cudaStream_t stream) {
  const int64_t n = p.n * p.c * p.h * p.w;
  if (n == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    avg_pool_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(dy),
                                                                        static_cast<T*>(dx), p);
  });
  check_launch("avg_pool2d_backward");
}

void launch_embedding(ElemType t, const void* weight, const void* idx, bool idx_i64, void* out, int64_t n,
                      int64_t vocab, int64_t d, int64_t* bad_index, cudaStream_t stream) {
  if (n * d == 0) return;
  dispatch_elem(t, [&]<typename T>(T) {
    embedding_kernel<T><<<blocks_for(n * d), kThreads, 0, stream>>>(static_cast<const T*>(weight), idx, idx_i64,
                                                                    static_cast<T*>(out), n, vocab, d, bad_index);
  });
  check_launch("embedding");
}

__global__ void record_bad_value_kernel(const void* idx, bool i64, int64_t* flag) {
  const int64_t row = flag[0];
  if (row >= 0) flag[1] = index_at(idx, i64, row);
}

void launch_record_bad_value(const void* idx, bool idx_i64, int64_t* flag, cudaStream_t stream) {
  record_bad_value_kernel<<<1, 1, 0, stream>>>(idx, idx_i64, flag);
  check_launch("check");
}

void launch_embedding_backward(ElemType t, const void* idx, bool idx_i64, const void* dy, void* dw, int64_t n,
                               int64_t vocab, int64_t d, bool deterministic, cudaStream_t stream) {
  const size_t elem = t == ElemType::f64 ? sizeof(double) : sizeof(float);
  if (t != ElemType::f32 && t != ElemType::f64) throw std::runtime_error("embedding_backward: f32/f64 only");
  if (vocab * d > 0 && cudaMemsetAsync(dw, 0, static_cast<size_t>(vocab * d) * elem, stream) != cudaSuccess)
    throw std::runtime_error("embedding_backward: cudaMemsetAsync failed");
  if (n * d == 0) return;
  auto run = [&]<typename T>(T) {
    if (deterministic)
      embedding_backward_ordered_kernel<T><<<blocks_for(d), kThreads, 0, stream>>>(
          idx, idx_i64, static_cast<const T*>(dy), static_cast<T*>(dw), n, vocab, d);
    else
      embedding_backward_kernel<T><<<blocks_for(n * d), kThreads, 0, stream>>>(
          idx, idx_i64, static_cast<const T*>(dy), static_cast<T*>(dw), n, vocab, d);
  };
  if (t == ElemType::f64)
    run(double{});
  else
    run(float{});
  check_launch("embedding_backward");
}

void launch_dropout(ElemType t, const StridedView& x, void* out, const Layout& layout, double p, uint64_t seed,
                    uint64_t offset, const uint64_t* offset_slot, cudaStream_t stream) {
  if (layout.numel == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    dropout_kernel<T><<<blocks_for(layout.numel), kThreads, 0, stream>>>(x, static_cast<T*>(out), layout, p, seed,
                                                                         offset, offset_slot);
  });
  check_launch("dropout");
}

void launch_random(ElemType t, bool normal, void* out, int64_t n, double a, double b, uint64_t seed, uint64_t offset,
                   const uint64_t* offset_slot, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    random_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(normal, static_cast<T*>(out), n, a, b, seed, offset,
                                                             offset_slot);
  });
  check_launch(normal ? "normal" : "uniform");
}

}  // namespace gpuml::cuda
