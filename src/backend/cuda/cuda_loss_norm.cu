// cross_entropy (+ backward), layer_norm and batch_norm (+ backward). Statistics accumulate in
// double with fixed-order block reductions, so results are deterministic run to run.
#include <cfloat>

#include "backend/cuda/cuda_device.cuh"

namespace gpuml::cuda {

namespace {

__device__ __forceinline__ int64_t label_at(const void* labels, bool i64, int64_t r) {
  return i64 ? static_cast<const int64_t*>(labels)[r] : static_cast<const int32_t*>(labels)[r];
}

// A float scalar of a type known only at run time (dloss may differ from the logits' dtype).
__device__ __forceinline__ double scalar_f64(const void* p, ElemType t) {
  switch (t) {
    case ElemType::f64: return *static_cast<const double*>(p);
    case ElemType::bf16: return to_f64(*static_cast<const __nv_bfloat16*>(p));
    case ElemType::f16: return to_f64(*static_cast<const __half*>(p));
    default: return *static_cast<const float*>(p);
  }
}

// One block per row (a 50,000-word vocabulary is one row's work for 256 threads, not one
// thread's): lse[r] = logsumexp(row) for every row (the backward reads it), row_loss[r] =
// lse[r] - row[label] and kept[r] = 1; ignored rows 0 and 0.
template <typename T>
__global__ void cross_entropy_rows_kernel(const T* logits, const void* labels, bool i64, double* row_loss,
                                          double* kept, Acc<T>* lse, int64_t n, int64_t c, int64_t ignore_index,
                                          int64_t* bad_label) {
  __shared__ double scratch[kThreads];
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const T* row = logits + r * c;
    double m = -DBL_MAX;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) m = fmax(m, to_f64(row[j]));
    m = block_max(m, scratch);
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) s += exp(to_f64(row[j]) - m);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
      const double row_lse = m + log(s);
      lse[r] = static_cast<Acc<T>>(row_lse);
      const int64_t label = label_at(labels, i64, r);
      const bool counts = label != ignore_index && label >= 0 && label < c;
      if (label != ignore_index && !counts)
        atomicMin(reinterpret_cast<unsigned long long*>(bad_label), static_cast<unsigned long long>(r));
      row_loss[r] = counts ? row_lse - to_f64(row[label]) : 0.0;
      kept[r] = counts ? 1.0 : 0.0;
    }
  }
}

// The mean over kept rows, summed by one block in a fixed order: deterministic run to run.
template <typename T>
__global__ void cross_entropy_mean_kernel(const double* row_loss, const double* kept, T* loss, int64_t n) {
  __shared__ double scratch[kThreads];
  double total = 0.0, count = 0.0;
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
    total += row_loss[r];
    count += kept[r];
  }
  total = block_sum(total, scratch);
  count = block_sum(count, scratch);
  if (threadIdx.x == 0) *loss = from_acc<T>(static_cast<Acc<T>>(count == 0.0 ? __longlong_as_double(0x7ff8000000000000LL) : total / count));
}

// One block per row, one pass over it with the lse the forward kept: (exp(x - lse) - onehot) *
// scale, in Acc<T>; each block also counts the kept rows (cheap next to the row's work).
template <typename T>
__global__ void cross_entropy_backward_kernel(const T* logits, const void* labels, bool i64, const void* dloss,
                                              ElemType dloss_type, const Acc<T>* lse, T* dlogits, int64_t n,
                                              int64_t c, int64_t ignore_index) {
  __shared__ double scratch[kThreads];
  double kept = 0.0;
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) kept += label_at(labels, i64, r) != ignore_index;
  kept = block_sum(kept, scratch);
  const Acc<T> scale = static_cast<Acc<T>>(scalar_f64(dloss, dloss_type) / kept);
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t label = label_at(labels, i64, r);
    const T* row = logits + r * c;
    T* grad = dlogits + r * c;
    if (label == ignore_index) {
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x) grad[j] = from_acc<T>(Acc<T>(0));
      continue;
    }
    const Acc<T> row_lse = lse[r];
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      const Acc<T> softmax = exp(static_cast<Acc<T>>(to_f64(row[j])) - row_lse);
      grad[j] = from_acc<T>((softmax - (j == label ? Acc<T>(1) : Acc<T>(0))) * scale);
    }
  }
}

// Elements of group g: layer_norm rows are contiguous (g * d + k); batch_norm channels are
// strided ((i / s) * c + g) * s + i % s over n * s elements.
struct Groups {
  int64_t c = 0, s = 1;  // batch_norm: channels and spatial size; layer_norm: c = 0
  int64_t d = 0;         // elements per group
  __device__ int64_t index(int64_t g, int64_t k) const {
    return c == 0 ? g * d + k : ((k / s) * c + g) * s + k % s;
  }
  __device__ int64_t param(int64_t g, int64_t k) const { return c == 0 ? k : g; }
};

// This thread's share of group g: f(k, x[index(g, k)]); a layer_norm row in 16-byte packs where
// aligned (block_row_walk), batch_norm's strided channel element by element.
template <typename T, typename Fn>
__device__ __forceinline__ void group_walk(const T* x, const Groups& gr, int64_t g, Fn&& f) {
  if (gr.c == 0) {
    block_row_walk(x + g * gr.d, gr.d, f);
  } else {
    for (int64_t k = threadIdx.x; k < gr.d; k += blockDim.x) f(k, x[gr.index(g, k)]);
  }
}

template <typename T>
__device__ void group_stats(const T* x, const Groups& gr, int64_t g, double* scratch, double& mean, double& var) {
  double s = 0.0;
  group_walk(x, gr, g, [&](int64_t, T v) { s += to_f64(v); });
  mean = block_sum(s, scratch) / static_cast<double>(gr.d);
  double v = 0.0;
  group_walk(x, gr, g, [&](int64_t, T e) {
    const double dv = to_f64(e) - mean;
    v += dv * dv;
  });
  var = block_sum(v, scratch) / static_cast<double>(gr.d);
}

// y = (x - mean) * rsqrt(var + eps) * w + b; stats from the batch or from running_mean/var.
// kept_mean/kept_rstd (layer_norm's outputs 1 and 2; nullptr for batch_norm): each group's mean
// and rsqrt(var + eps), in Acc<T> (f32, f64 for f64) for the backward.
// W: the parameters' type, T's, or f32 beside a bf16/f16 layer_norm x.
template <typename T, typename W = T>
__global__ void normalize_kernel(const T* x, const W* w, const W* b, const T* run_mean, const T* run_var, T* y,
                                 Acc<T>* kept_mean, Acc<T>* kept_rstd, Groups gr, int64_t groups, double eps) {
  __shared__ double scratch[kThreads];
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    double mean, var;
    if (run_mean) {
      mean = to_f64(run_mean[g]);
      var = to_f64(run_var[g]);
    } else {
      group_stats(x, gr, g, scratch, mean, var);
    }
    const double rstd = 1.0 / sqrt(var + eps);
    if (kept_mean != nullptr && threadIdx.x == 0) {
      kept_mean[g] = static_cast<Acc<T>>(mean);
      kept_rstd[g] = static_cast<Acc<T>>(rstd);
    }
    group_walk(x, gr, g, [&](int64_t k, T xv) {
      const int64_t p = gr.param(g, k);
      y[gr.index(g, k)] = from_acc<T>(static_cast<Acc<T>>((to_f64(xv) - mean) * rstd * to_f64(w[p]) + to_f64(b[p])));
    });
  }
}

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = dy * w, batch statistics: those the
// forward kept (kept_mean/kept_rstd: layer_norm) or recomputed from x (nullptr: batch_norm).
template <typename T, typename W = T>
__global__ void normalize_backward_kernel(const T* x, const W* w, const T* dy, const Acc<T>* kept_mean,
                                          const Acc<T>* kept_rstd, T* dx, Groups gr, int64_t groups, double eps) {
  __shared__ double scratch[kThreads];
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    double mean, rstd;
    if (kept_mean != nullptr) {
      mean = static_cast<double>(kept_mean[g]);
      rstd = static_cast<double>(kept_rstd[g]);
    } else {
      double var;
      group_stats(x, gr, g, scratch, mean, var);
      rstd = 1.0 / sqrt(var + eps);
    }
    double sg = 0.0, sgx = 0.0;
    group_walk(x, gr, g, [&](int64_t k, T xv) {
      const double grad = to_f64(dy[gr.index(g, k)]) * to_f64(w[gr.param(g, k)]);
      sg += grad;
      sgx += grad * (to_f64(xv) - mean) * rstd;
    });
    const double mean_g = block_sum(sg, scratch) / static_cast<double>(gr.d);
    const double mean_gx = block_sum(sgx, scratch) / static_cast<double>(gr.d);
    group_walk(x, gr, g, [&](int64_t k, T xv) {
      const int64_t i = gr.index(g, k);
      const double grad = to_f64(dy[i]) * to_f64(w[gr.param(g, k)]);
      const double xhat = (to_f64(xv) - mean) * rstd;
      dx[i] = from_acc<T>(static_cast<Acc<T>>(rstd * (grad - mean_g - xhat * mean_gx)));
    });
  }
}

// The parameters' gradients of layer_norm, dw[j] = sum over rows of dy * xhat and db[j] = sum of
// dy, in a fixed order: each block takes 32 columns of a chunk of kParamChunkRows rows, its 8 row
// lanes stride the chunk and are added in lane order into parts (chunk, 2, d); then one thread
// per column adds the chunks in order (layer_norm_param_sum_kernel). Threads of a warp read
// adjacent columns of one row: coalesced.
constexpr int kParamColumns = 32, kParamLanes = 8;
constexpr int64_t kParamChunkRows = 256;
constexpr int64_t kParamMaxChunks = 65535;  // gridDim.y's limit; more rows: a chunk per kParamChunkRows still

int64_t param_chunks(int64_t rows) { return std::min((rows + kParamChunkRows - 1) / kParamChunkRows, kParamMaxChunks); }

template <typename T>
__global__ void layer_norm_param_parts_kernel(const T* x, const T* dy, const Acc<T>* mean, const Acc<T>* rstd,
                                              double* parts, int64_t rows, int64_t d, int64_t chunk_rows) {
  __shared__ double lanes_w[kParamLanes][kParamColumns], lanes_b[kParamLanes][kParamColumns];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kParamColumns + threadIdx.x, chunk = blockIdx.y;
  const int64_t r0 = chunk * chunk_rows, r1 = min(rows, r0 + chunk_rows);
  double sw = 0.0, sb = 0.0;
  if (j < d) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kParamLanes) {
      const double g = to_f64(dy[r * d + j]);
      sw += g * (to_f64(x[r * d + j]) - static_cast<double>(mean[r])) * static_cast<double>(rstd[r]);
      sb += g;
    }
  }
  lanes_w[threadIdx.y][threadIdx.x] = sw;
  lanes_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && j < d) {
    for (int lane = 1; lane < kParamLanes; ++lane) {
      sw += lanes_w[lane][threadIdx.x];
      sb += lanes_b[lane][threadIdx.x];
    }
    parts[(chunk * 2) * d + j] = sw;
    parts[(chunk * 2 + 1) * d + j] = sb;
  }
}

template <typename W>
__global__ void layer_norm_param_sum_kernel(const double* parts, int64_t chunks, int64_t d, W* dw, W* db) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < d;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double sw = 0.0, sb = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      sw += parts[(c * 2) * d + j];
      sb += parts[(c * 2 + 1) * d + j];
    }
    dw[j] = from_acc<W>(static_cast<Acc<W>>(sw));
    db[j] = from_acc<W>(static_cast<Acc<W>>(sb));
  }
}

}  // namespace

int64_t layer_norm_param_parts(int64_t rows, int64_t d) { return std::max<int64_t>(1, param_chunks(rows) * 2 * d); }

void launch_cross_entropy(ElemType t, const void* logits, const void* labels, bool labels_i64, void* loss, void* lse,
                          int64_t n, int64_t c, int64_t ignore_index, int64_t* bad_label, double* row_scratch,
                          cudaStream_t stream) {
  dispatch_float(t, [&]<typename T>(T) {
    if (n > 0) {
      cross_entropy_rows_kernel<T><<<capped_blocks(n), kThreads, 0, stream>>>(
          static_cast<const T*>(logits), labels, labels_i64, row_scratch, row_scratch + n, static_cast<Acc<T>*>(lse),
          n, c, ignore_index, bad_label);
      check_launch("cross_entropy (rows)");
    }
    cross_entropy_mean_kernel<T><<<1, kThreads, 0, stream>>>(row_scratch, row_scratch + n, static_cast<T*>(loss), n);
  });
  check_launch("cross_entropy (mean)");
}

void launch_cross_entropy_backward(ElemType t, const void* logits, const void* labels, bool labels_i64,
                                   const void* dloss, ElemType dloss_type, const void* lse, void* dlogits, int64_t n,
                                   int64_t c, int64_t ignore_index, cudaStream_t stream) {
  if (n * c == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    cross_entropy_backward_kernel<T><<<capped_blocks(n), kThreads, 0, stream>>>(
        static_cast<const T*>(logits), labels, labels_i64, dloss, dloss_type, static_cast<const Acc<T>*>(lse),
        static_cast<T*>(dlogits), n, c, ignore_index);
  });
  check_launch("cross_entropy_backward");
}

namespace {
// fn.template operator()<T, W>() for layer_norm's x type t and parameter type wt: W = T, or f32
// beside a bf16/f16 x (type_rules.cpp).
template <typename Fn>
void dispatch_norm_types(ElemType t, ElemType wt, Fn&& fn) {
  if (wt == t) {
    dispatch_float(t, [&]<typename T>(T) { fn.template operator()<T, T>(); });
  } else if (wt == ElemType::f32 && t == ElemType::bf16) {
    fn.template operator()<__nv_bfloat16, float>();
  } else if (wt == ElemType::f32 && t == ElemType::f16) {
    fn.template operator()<__half, float>();
  } else {
    throw std::runtime_error("layer_norm: parameters must have x's type, or f32 beside a bf16/f16 x");
  }
}
}  // namespace

void launch_layer_norm(ElemType t, ElemType wt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t d, double eps, cudaStream_t stream) {
  if (rows * d == 0) return;
  Groups gr;
  gr.d = d;
  dispatch_norm_types(t, wt, [&]<typename T, typename W>() {
    normalize_kernel<T, W><<<capped_blocks(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const W*>(w), static_cast<const W*>(b), nullptr, nullptr,
        static_cast<T*>(y), static_cast<Acc<T>*>(mean), static_cast<Acc<T>*>(rstd), gr, rows, eps);
  });
  check_launch("layer_norm");
}

void launch_layer_norm_backward(ElemType t, ElemType wt, const void* x, const void* w, const void* dy,
                                const void* mean, const void* rstd, void* dx, void* dw, void* db, double* parts,
                                int64_t rows, int64_t d, cudaStream_t stream) {
  if (d == 0) return;
  Groups gr;
  gr.d = d;
  const int64_t chunks = param_chunks(rows), chunk_rows = chunks == 0 ? 0 : (rows + chunks - 1) / chunks;
  dispatch_norm_types(t, wt, [&]<typename T, typename W>() {
    if (rows > 0) {
      normalize_backward_kernel<T, W><<<capped_blocks(rows), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const W*>(w), static_cast<const T*>(dy),
          static_cast<const Acc<T>*>(mean), static_cast<const Acc<T>*>(rstd), static_cast<T*>(dx), gr, rows, 0.0);
      check_launch("layer_norm_backward");
      const dim3 grid(static_cast<unsigned>((d + kParamColumns - 1) / kParamColumns), static_cast<unsigned>(chunks));
      layer_norm_param_parts_kernel<T><<<grid, dim3(kParamColumns, kParamLanes), 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<const Acc<T>*>(mean),
          static_cast<const Acc<T>*>(rstd), parts, rows, d, chunk_rows);
      check_launch("layer_norm_backward (parameter parts)");
    }
    layer_norm_param_sum_kernel<W><<<blocks_for(d), kThreads, 0, stream>>>(parts, chunks, d, static_cast<W*>(dw),
                                                                           static_cast<W*>(db));
  });
  check_launch("layer_norm_backward (parameter sums)");
}

void launch_batch_norm(ElemType t, const void* x, const void* w, const void* b, const void* running_mean,
                       const void* running_var, void* y, int64_t n, int64_t c, int64_t s, bool training, double eps,
                       cudaStream_t stream) {
  if (n * c * s == 0) return;
  Groups gr;
  gr.c = c;
  gr.s = s;
  gr.d = n * s;
  dispatch_float(t, [&]<typename T>(T) {
    normalize_kernel<T><<<capped_blocks(c), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),
        training ? nullptr : static_cast<const T*>(running_mean), training ? nullptr : static_cast<const T*>(running_var),
        static_cast<T*>(y), nullptr, nullptr, gr, c, eps);
  });
  check_launch("batch_norm");
}

void launch_batch_norm_backward(ElemType t, const void* x, const void* w, const void* dy, void* dx, int64_t n,
                                int64_t c, int64_t s, double eps, cudaStream_t stream) {
  if (n * c * s == 0) return;
  Groups gr;
  gr.c = c;
  gr.s = s;
  gr.d = n * s;
  dispatch_float(t, [&]<typename T>(T) {
    normalize_backward_kernel<T><<<capped_blocks(c), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(dy), nullptr, nullptr,
        static_cast<T*>(dx), gr, c, eps);
  });
  check_launch("batch_norm_backward");
}

}  // namespace gpuml::cuda
