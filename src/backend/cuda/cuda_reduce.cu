// Reductions over the middle dim of a contiguous (outer, reduce, inner) tensor (sum, mean, max,
// argmax) and softmax / log_softmax. The host side permutes any set of axes into that form. Rows
// that are contiguous (inner 1) are read in 16-byte packs where aligned (block_row_walk).
// Sums accumulate in double, like ref: f32 results then agree to the last bit or two.
#include <cfloat>

#include "backend/cuda/cuda_device.cuh"

namespace gpuml::cuda {

namespace {

// Folds value v at index r into (best, best_index): max keeps NaN once seen, argmax keeps the
// first maximal index (a NaN counts as the maximum), as the reference backend.
__device__ __forceinline__ void fold_max(double v, int64_t r, double& best, int64_t& best_index) {
  bool better = best_index < 0 || (v != v && best == best) || v > best;
  if (best != best && best_index >= 0) better = false;
  if (better) {
    best = v;
    best_index = r;
  }
}

__device__ __forceinline__ void merge_max(double v, int64_t r, double& best, int64_t& best_index) {
  if (r < 0) return;
  if (best_index < 0) { best = v; best_index = r; return; }
  bool v_nan = v != v, b_nan = best != best;
  if (b_nan && !v_nan) return;
  if ((v_nan && !b_nan) || v > best || (v == best && r < best_index) || (v_nan && b_nan && r < best_index)) {
    best = v;
    best_index = r;
  }
}

// One block per output element; threads stride over the reduced dim, then a shared-memory tree.
template <typename T, typename O>
__global__ void reduce_kernel(ReduceOp op, const T* in, O* out, int64_t outer, int64_t reduce, int64_t inner) {
  __shared__ double s_value[kThreads];
  __shared__ int64_t s_index[kThreads];
  for (int64_t o = blockIdx.x; o < outer * inner; o += gridDim.x) {
    const int64_t base = (o / inner) * reduce * inner + o % inner;
    double acc = 0.0;
    int64_t idx = -1;
    auto fold = [&](int64_t r, T x) {
      const double v = to_f64(x);
      if (op == ReduceOp::sum || op == ReduceOp::mean) acc += v;
      else fold_max(v, r, acc, idx);
    };
    block_walk(in + base, reduce, inner, fold);  // a contiguous row (inner 1): 16-byte loads where aligned
    s_value[threadIdx.x] = acc;
    s_index[threadIdx.x] = idx;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        if (op == ReduceOp::sum || op == ReduceOp::mean) {
          s_value[threadIdx.x] += s_value[threadIdx.x + stride];
        } else {
          double b = s_value[threadIdx.x];
          int64_t bi = s_index[threadIdx.x];
          merge_max(s_value[threadIdx.x + stride], s_index[threadIdx.x + stride], b, bi);
          s_value[threadIdx.x] = b;
          s_index[threadIdx.x] = bi;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      double v = s_value[0];
      if (op == ReduceOp::mean) v = v / static_cast<double>(reduce);  // 0 / 0 = NaN for empty
      if constexpr (std::is_same_v<O, int64_t>) out[o] = s_index[0];
      else out[o] = from_acc<O>(static_cast<Acc<O>>(v));
    }
    __syncthreads();
  }
}

// One thread per output element, reducing in order r = 0, 1, ...: for inner >= 32 (a bias
// gradient: the sum over the batch of (N, D)), where consecutive threads then read consecutive
// addresses. reduce_kernel's threads would stride `inner` apart, one uncoalesced load each.
template <typename T, typename O>
__global__ void column_reduce_kernel(ReduceOp op, const T* in, O* out, int64_t outer, int64_t reduce, int64_t inner) {
  GPUML_GRID_STRIDE(o, outer * inner) {
    const int64_t base = (o / inner) * reduce * inner + o % inner;
    double acc = 0.0;
    int64_t idx = -1;
    for (int64_t r = 0; r < reduce; ++r) {
      const double v = to_f64(in[base + r * inner]);
      if (op == ReduceOp::sum || op == ReduceOp::mean) acc += v;
      else fold_max(v, r, acc, idx);
    }
    if (op == ReduceOp::mean) acc = acc / static_cast<double>(reduce);  // 0 / 0 = NaN for empty
    if constexpr (std::is_same_v<O, int64_t>) out[o] = idx;
    else out[o] = from_acc<O>(static_cast<Acc<O>>(acc));
  }
}

// One block per (outer, inner) row: max, then the sum of exponentials, then the outputs.
template <typename T>
__global__ void softmax_kernel(bool log_out, const T* in, T* out, int64_t outer, int64_t n, int64_t inner) {
  __shared__ double s_part[kThreads];
  for (int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
    const int64_t base = (row / inner) * n * inner + row % inner;
    // Every element of the row in this thread's share: 16-byte loads where the row is contiguous.
    auto walk = [&](auto&& f) { block_walk(in + base, n, inner, f); };
    double m = -DBL_MAX;
    walk([&](int64_t, T x) { m = fmax(m, to_f64(x)); });
    s_part[threadIdx.x] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
      if (threadIdx.x < s) s_part[threadIdx.x] = fmax(s_part[threadIdx.x], s_part[threadIdx.x + s]);
      __syncthreads();
    }
    m = s_part[0];
    __syncthreads();
    double sum = 0.0;
    walk([&](int64_t, T x) { sum += exp(to_f64(x) - m); });
    s_part[threadIdx.x] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
      if (threadIdx.x < s) s_part[threadIdx.x] += s_part[threadIdx.x + s];
      __syncthreads();
    }
    sum = s_part[0];
    const double log_sum = log(sum);
    walk([&](int64_t j, T x) {
      const double z = to_f64(x) - m;
      out[base + j * inner] = from_acc<T>(static_cast<Acc<T>>(log_out ? z - log_sum : exp(z) / sum));
    });
    __syncthreads();
  }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(rows < 65535 * 8 ? (rows > 0 ? rows : 1) : 65535 * 8); }

}  // namespace

void launch_reduce(ReduceOp op, ElemType t, const void* in, void* out, int64_t outer, int64_t reduce, int64_t inner,
                   cudaStream_t stream) {
  if (outer * inner == 0) return;
  dispatch_elem(t, [&]<typename T>(T) {
    const T* x = static_cast<const T*>(in);
    if (inner >= 32) {
      const unsigned blocks = blocks_for(outer * inner);
      if (op == ReduceOp::argmax)
        column_reduce_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(op, x, static_cast<int64_t*>(out), outer,
                                                                         reduce, inner);
      else
        column_reduce_kernel<T, T><<<blocks, kThreads, 0, stream>>>(op, x, static_cast<T*>(out), outer, reduce, inner);
      return;
    }
    if (op == ReduceOp::argmax)
      reduce_kernel<T, int64_t><<<row_blocks(outer * inner), kThreads, 0, stream>>>(op, x, static_cast<int64_t*>(out),
                                                                                  outer, reduce, inner);
    else
      reduce_kernel<T, T><<<row_blocks(outer * inner), kThreads, 0, stream>>>(op, x, static_cast<T*>(out), outer, reduce,
                                                                            inner);
  });
  check_launch("reduce");
}

void launch_softmax(ElemType t, bool log, const void* in, void* out, int64_t outer, int64_t n, int64_t inner,
                    cudaStream_t stream) {
  if (outer * n * inner == 0) return;
  dispatch_float(t, [&]<typename T>(T) {
    softmax_kernel<T><<<row_blocks(outer * inner), kThreads, 0, stream>>>(log, static_cast<const T*>(in),
                                                                         static_cast<T*>(out), outer, n, inner);
  });
  check_launch("softmax");
}

}  // namespace gpuml::cuda
