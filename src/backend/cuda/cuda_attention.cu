// Scaled dot-product attention on CUDA, flash-style: keys in tiles of 32 through shared memory,
// an online softmax per query row (running maximum and sum, rescaling what was accumulated), the
// row log-sum-exp kept for the backward; f32 accumulation for f32 and bf16 inputs. Written to be
// plainly right rather than fastest (no tensor cores): one warp scores a tile for one query row at
// a time, lane j taking key j; the head-dim loops give lane e columns e, e + 32, ...
//
// The backward is deterministic (no atomics), in three kernels that recompute the probabilities
// P = exp(s - lse): delta (D_i = do_i . o_i, one warp per row), dk/dv (one warp per key tile,
// looping over the queries that see it, each lane owning its key's dk and dv rows in shared
// memory) and dq (like the forward: a block per query tile, looping over key tiles).
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "backend/cuda/cuda_device.cuh"
#include "core/philox.h"

namespace gpuml::cuda {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kKeyTile = static_cast<int>(kAttentionKeyTile);  // lane j of a warp scores key j0 + j
constexpr int kRowWarps = 4;     // warps per block of the forward and dq kernels
constexpr int kRowsPerWarp = 4;  // query rows each of those warps owns
constexpr int kQueryTile = kRowWarps * kRowsPerWarp;
static_assert(kKeyTile == kWarp && kQueryTile == kAttentionQueryTile, "the tiles cuda_kernels.h announces");

__device__ __forceinline__ float warp_max(float v) {
  for (int s = kWarp / 2; s > 0; s /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, s));
  return v;
}
// A butterfly: every lane adds the same pairs in the same tree, so every lane gets the same bits.
__device__ __forceinline__ float warp_sum(float v) {
  for (int s = kWarp / 2; s > 0; s /= 2) v += __shfl_xor_sync(kFullMask, v, s);
  return v;
}

// Whether query i sees key j (j < Tk checked by the caller): every key, or (causal) keys up to
// i + Tk - Tq, the last query aligned with the last key.
__device__ __forceinline__ bool sees(const AttentionParams& p, int64_t i, int64_t j) {
  return !p.causal || j <= i + (p.tk - p.tq);
}
// The last key (exclusive) any query up to `last_query` sees.
__device__ __forceinline__ int64_t key_end(const AttentionParams& p, int64_t last_query) {
  return p.causal ? min(p.tk, last_query + (p.tk - p.tq) + 1) : p.tk;
}

// The dropout factor of probability (bh, i, j): 1/(1-p) where Philox element ((bh Tq + i) Tk + j)
// of (seed, offset) is kept, else 0 (ref_attention.cpp's dropout_factor); 1 without dropout.
__device__ __forceinline__ float dropout_factor(const AttentionParams& p, uint64_t offset, int64_t bh, int64_t i,
                                                int64_t j) {
  if (!p.dropout) return 1.0f;
  const uint64_t element = static_cast<uint64_t>((bh * p.tq + i) * p.tk + j);
  return static_cast<double>(philox_uniform(p.seed, offset, element)) >= p.p ? p.keep_scale : 0.0f;
}

__device__ __forceinline__ uint64_t philox_offset_of(const AttentionParams& p) {
  return p.offset + (p.offset_slot != nullptr ? *p.offset_slot : 0);
}

// rows [t0, t0 + n) of a (T, d) head into shared (n, stride) floats times `factor`; rows past
// `rows` are zero.
template <typename T>
__device__ void stage_rows(const T* head, int64_t t0, int n, int64_t rows, int64_t d, float factor, float* dst,
                           int64_t stride) {
  for (int64_t x = threadIdx.x; x < n * d; x += blockDim.x) {
    const int64_t r = x / d, e = x % d, t = t0 + r;
    dst[r * stride + e] = t < rows ? to_acc(head[t * d + e]) * factor : 0.0f;
  }
}

__device__ __forceinline__ float dot(const float* a, const float* b, int64_t d) {
  float s = 0.0f;
  for (int64_t e = 0; e < d; ++e) s += a[e] * b[e];
  return s;
}

// Shared memory of the forward and dq kernels: k and v tiles (kKeyTile, d + 1), padded so that
// lane j reading row j, column e hits bank (j (d + 1) + e) % 32, a different one per lane; then
// `row_buffers` (kQueryTile, d) buffers of query-side rows.
size_t row_kernel_shared_bytes(int64_t d, int row_buffers) {
  return sizeof(float) * static_cast<size_t>(2 * kKeyTile * (d + 1) + row_buffers * kQueryTile * d);
}

// o and lse for the query tile blockIdx.y of head blockIdx.x. Per row, over key tiles: m the
// running maximum of the scores, l the running sum of exp(s - m), acc the running sum of
// exp(s - m) * dropout * v; a tile with a larger maximum rescales l and acc by exp(m_old - m_new).
template <typename T, int kChunks>
__global__ void __launch_bounds__(kRowWarps * kWarp)
    attention_forward_kernel(const T* q, const T* k, const T* v, T* o, float* lse, AttentionParams p) {
  extern __shared__ float shared[];
  const int64_t d = p.d, padded = d + 1;
  float* k_tile = shared;                   // (kKeyTile, d + 1)
  float* v_tile = k_tile + kKeyTile * padded;  // (kKeyTile, d + 1)
  float* q_tile = v_tile + kKeyTile * padded;  // (kQueryTile, d), times scale
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t bh = blockIdx.x, i0 = static_cast<int64_t>(blockIdx.y) * kQueryTile;
  const T* q_head = q + bh * p.tq * d;  // (Tq, d)
  const T* k_head = k + bh * p.tk * d;  // (Tk, d)
  const T* v_head = v + bh * p.tk * d;
  stage_rows(q_head, i0, kQueryTile, p.tq, d, p.scale, q_tile, d);
  const uint64_t offset = philox_offset_of(p);

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) acc[rr][c] = 0.0f;
  }
  const int64_t keys = key_end(p, min(i0 + kQueryTile, p.tq) - 1);
  for (int64_t j0 = 0; j0 < keys; j0 += kKeyTile) {
    __syncthreads();  // the previous tile's readers are done
    stage_rows(k_head, j0, kKeyTile, p.tk, d, 1.0f, k_tile, padded);
    stage_rows(v_head, j0, kKeyTile, p.tk, d, 1.0f, v_tile, padded);
    __syncthreads();
    const int64_t j = j0 + lane;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      const int64_t i = i0 + r;
      if (i >= p.tq) continue;  // the same for the whole warp
      const bool visible = j < p.tk && sees(p, i, j);
      const float s = visible ? dot(q_tile + r * d, k_tile + lane * padded, d) : -INFINITY;
      const float tile_max = warp_max(s);
      if (tile_max == -INFINITY) continue;  // no key of this tile for row i (the whole warp)
      const float new_max = fmaxf(m[rr], tile_max);
      float prob = visible ? expf(s - new_max) : 0.0f;
      const float rescale = expf(m[rr] - new_max);  // 0 on the first tile (m = -inf)
      l[rr] = l[rr] * rescale + warp_sum(prob);
      m[rr] = new_max;
      if (visible) prob *= dropout_factor(p, offset, bh, i, j);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) acc[rr][c] *= rescale;
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const float pj = __shfl_sync(kFullMask, prob, jj);
        const float* v_row = v_tile + jj * padded;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          const int64_t e = lane + c * kWarp;
          if (e < d) acc[rr][c] += pj * v_row[e];
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = i0 + warp * kRowsPerWarp + rr;
    if (i >= p.tq) continue;
    const float inv = 1.0f / l[rr];
    T* o_row = o + (bh * p.tq + i) * d;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int64_t e = lane + c * kWarp;
      if (e < d) o_row[e] = from_acc<T>(acc[rr][c] * inv);
    }
    if (lane == 0) lse[bh * p.tq + i] = m[rr] + logf(l[rr]);
  }
}

// delta[row] = do[row] . o[row] over d, one warp per row of (rows, d).
template <typename T>
__global__ void attention_delta_kernel(const T* o, const T* dout, float* delta, int64_t rows, int64_t d) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int lane = threadIdx.x % kWarp;
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; row < rows;
       row += warps) {
    float s = 0.0f;
    for (int64_t e = lane; e < d; e += kWarp) s += to_acc(o[row * d + e]) * to_acc(dout[row * d + e]);
    s = warp_sum(s);
    if (lane == 0) delta[row] = s;
  }
}

// dq for the query tile blockIdx.y of head blockIdx.x: dq_i = scale sum_j dS_ij k_j with
// dS_ij = P_ij (M_ij do_i . v_j - D_i), P recomputed from lse, M the dropout factors.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kRowWarps * kWarp)
    attention_dq_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta, T* dq,
                        AttentionParams p) {
  extern __shared__ float shared[];
  const int64_t d = p.d, padded = d + 1;
  float* k_tile = shared;                      // (kKeyTile, d + 1)
  float* v_tile = k_tile + kKeyTile * padded;  // (kKeyTile, d + 1)
  float* q_tile = v_tile + kKeyTile * padded;  // (kQueryTile, d), times scale
  float* do_tile = q_tile + kQueryTile * d;    // (kQueryTile, d)
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t bh = blockIdx.x, i0 = static_cast<int64_t>(blockIdx.y) * kQueryTile;
  stage_rows(q + bh * p.tq * d, i0, kQueryTile, p.tq, d, p.scale, q_tile, d);
  stage_rows(dout + bh * p.tq * d, i0, kQueryTile, p.tq, d, 1.0f, do_tile, d);
  const T* k_head = k + bh * p.tk * d;
  const T* v_head = v + bh * p.tk * d;
  const uint64_t offset = philox_offset_of(p);

  float acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr)
#pragma unroll
    for (int c = 0; c < kChunks; ++c) acc[rr][c] = 0.0f;
  const int64_t keys = key_end(p, min(i0 + kQueryTile, p.tq) - 1);
  for (int64_t j0 = 0; j0 < keys; j0 += kKeyTile) {
    __syncthreads();
    stage_rows(k_head, j0, kKeyTile, p.tk, d, 1.0f, k_tile, padded);
    stage_rows(v_head, j0, kKeyTile, p.tk, d, 1.0f, v_tile, padded);
    __syncthreads();
    const int64_t j = j0 + lane;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      const int64_t i = i0 + r;
      if (i >= p.tq) continue;
      float ds = 0.0f;
      if (j < p.tk && sees(p, i, j)) {
        const float prob = expf(dot(q_tile + r * d, k_tile + lane * padded, d) - lse[bh * p.tq + i]);
        const float dprob = dot(do_tile + r * d, v_tile + lane * padded, d) * dropout_factor(p, offset, bh, i, j);
        ds = prob * (dprob - delta[bh * p.tq + i]);
      }
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const float dsj = __shfl_sync(kFullMask, ds, jj);
        const float* k_row = k_tile + jj * padded;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          const int64_t e = lane + c * kWarp;
          if (e < d) acc[rr][c] += dsj * k_row[e];
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = i0 + warp * kRowsPerWarp + rr;
    if (i >= p.tq) continue;
    T* dq_row = dq + (bh * p.tq + i) * d;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int64_t e = lane + c * kWarp;
      if (e < d) dq_row[e] = from_acc<T>(acc[rr][c] * p.scale);
    }
  }
}

// dk and dv for the key tile blockIdx.y of head blockIdx.x, one warp: lane j owns key j0 + j and
// its dk, dv rows (shared memory), and adds query i's terms for i in order (deterministic):
//   dv_j += P_ij M_ij do_i,   dk_j += dS_ij (scale q_i).
size_t dkdv_shared_bytes(int64_t d) { return sizeof(float) * static_cast<size_t>(4 * kKeyTile * (d + 1) + 2 * d); }

template <typename T>
__global__ void __launch_bounds__(kWarp) attention_dkdv_kernel(const T* q, const T* k, const T* v, const T* dout,
                                                               const float* lse, const float* delta, T* dk, T* dv,
                                                               AttentionParams p) {
  extern __shared__ float shared[];
  const int64_t d = p.d, padded = d + 1;
  float* k_tile = shared;                        // (kKeyTile, d + 1)
  float* v_tile = k_tile + kKeyTile * padded;    // (kKeyTile, d + 1)
  float* dk_tile = v_tile + kKeyTile * padded;   // (kKeyTile, d + 1)
  float* dv_tile = dk_tile + kKeyTile * padded;  // (kKeyTile, d + 1)
  float* q_row = dv_tile + kKeyTile * padded;    // (d,), times scale
  float* do_row = q_row + d;                     // (d,)
  const int lane = threadIdx.x;
  const int64_t bh = blockIdx.x, j0 = static_cast<int64_t>(blockIdx.y) * kKeyTile, j = j0 + lane;
  stage_rows(k + bh * p.tk * d, j0, kKeyTile, p.tk, d, 1.0f, k_tile, padded);
  stage_rows(v + bh * p.tk * d, j0, kKeyTile, p.tk, d, 1.0f, v_tile, padded);
  for (int64_t x = lane; x < kKeyTile * padded; x += kWarp) dk_tile[x] = dv_tile[x] = 0.0f;
  const T* q_head = q + bh * p.tq * d;
  const T* do_head = dout + bh * p.tq * d;
  const uint64_t offset = philox_offset_of(p);
  float* dk_mine = dk_tile + lane * padded;
  float* dv_mine = dv_tile + lane * padded;
  // The first query that sees key j0: 0, or (causal) j0 - (Tk - Tq).
  const int64_t first_query = p.causal ? max(int64_t{0}, j0 - (p.tk - p.tq)) : 0;
  for (int64_t i = first_query; i < p.tq; ++i) {
    __syncwarp();  // the previous row's readers are done
    for (int64_t e = lane; e < d; e += kWarp) {
      q_row[e] = to_acc(q_head[i * d + e]) * p.scale;
      do_row[e] = to_acc(do_head[i * d + e]);
    }
    __syncwarp();
    if (j < p.tk && sees(p, i, j)) {
      const float prob = expf(dot(q_row, k_tile + lane * padded, d) - lse[bh * p.tq + i]);
      const float factor = dropout_factor(p, offset, bh, i, j);
      const float ds = prob * (dot(do_row, v_tile + lane * padded, d) * factor - delta[bh * p.tq + i]);
      const float kept = prob * factor;
      for (int64_t e = 0; e < d; ++e) {
        dv_mine[e] += kept * do_row[e];
        dk_mine[e] += ds * q_row[e];
      }
    }
  }
  __syncwarp();
  for (int64_t x = lane; x < kKeyTile * d; x += kWarp) {
    const int64_t r = x / d, e = x % d;
    if (j0 + r >= p.tk) continue;
    dk[(bh * p.tk + j0 + r) * d + e] = from_acc<T>(dk_tile[r * padded + e]);
    dv[(bh * p.tk + j0 + r) * d + e] = from_acc<T>(dv_tile[r * padded + e]);
  }
}

// Raises a kernel's dynamic shared memory limit past the default 48 KiB when it needs more (a
// head dim of 128 does), then launches nothing: the caller launches.
template <typename Kernel>
void allow_shared_bytes(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("attention: cannot allow ") + std::to_string(bytes) +
                             " bytes of shared memory: " + cudaGetErrorString(e));
}

// Calls fn(std::integral_constant<int, chunks>) for the head dim's 32-column chunks (1 to 4).
template <typename Fn>
void dispatch_chunks(int64_t d, Fn&& fn) {
  switch ((d + kWarp - 1) / kWarp) {
    case 1: fn(std::integral_constant<int, 1>{}); return;
    case 2: fn(std::integral_constant<int, 2>{}); return;
    case 3: fn(std::integral_constant<int, 3>{}); return;
    case 4: fn(std::integral_constant<int, 4>{}); return;
    default: throw std::runtime_error("attention: head dim " + std::to_string(d) + " is over the CUDA kernel's 128");
  }
}

// f32 and bf16 only (the backend registers these).
template <typename Fn>
void dispatch_attention_type(ElemType t, Fn&& fn) {
  switch (t) {
    case ElemType::f32: fn(float{}); return;
    case ElemType::bf16: fn(__nv_bfloat16{}); return;
    default: throw std::runtime_error("attention: the CUDA kernel takes f32 and bf16");
  }
}

dim3 query_tile_grid(const AttentionParams& p) {
  return dim3(static_cast<unsigned>(p.batch_heads), static_cast<unsigned>((p.tq + kQueryTile - 1) / kQueryTile));
}

}  // namespace

void launch_attention(ElemType t, const void* q, const void* k, const void* v, void* o, float* lse,
                      const AttentionParams& p, cudaStream_t stream) {
  if (p.batch_heads * p.tq == 0) return;
  const size_t bytes = row_kernel_shared_bytes(p.d, 1);
  dispatch_attention_type(t, [&]<typename T>(T) {
    dispatch_chunks(p.d, [&](auto chunks) {
      auto kernel = attention_forward_kernel<T, decltype(chunks)::value>;
      allow_shared_bytes(kernel, bytes);
      kernel<<<query_tile_grid(p), kRowWarps * kWarp, bytes, stream>>>(
          static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<T*>(o), lse, p);
    });
  });
  check_launch("attention");
}

void launch_attention_backward(ElemType t, const void* q, const void* k, const void* v, const void* o,
                               const void* dout, const float* lse, float* delta, void* dq, void* dk, void* dv,
                               const AttentionParams& p, cudaStream_t stream) {
  if (p.batch_heads * p.tk == 0) return;
  dispatch_attention_type(t, [&]<typename T>(T) {
    const T *tq = static_cast<const T*>(q), *tk = static_cast<const T*>(k), *tv = static_cast<const T*>(v);
    const T* tdo = static_cast<const T*>(dout);
    const int64_t rows = p.batch_heads * p.tq;
    if (rows > 0) {
      attention_delta_kernel<T><<<blocks_for(rows * kWarp), kThreads, 0, stream>>>(static_cast<const T*>(o), tdo, delta,
                                                                                  rows, p.d);
      check_launch("attention_backward (delta)");
      const size_t bytes = row_kernel_shared_bytes(p.d, 2);
      dispatch_chunks(p.d, [&](auto chunks) {
        auto kernel = attention_dq_kernel<T, decltype(chunks)::value>;
        allow_shared_bytes(kernel, bytes);
        kernel<<<query_tile_grid(p), kRowWarps * kWarp, bytes, stream>>>(tq, tk, tv, tdo, lse, delta, static_cast<T*>(dq),
                                                                          p);
      });
      check_launch("attention_backward (dq)");
    }
    const size_t bytes = dkdv_shared_bytes(p.d);
    auto kernel = attention_dkdv_kernel<T>;
    allow_shared_bytes(kernel, bytes);
    const dim3 grid(static_cast<unsigned>(p.batch_heads), static_cast<unsigned>((p.tk + kKeyTile - 1) / kKeyTile));
    kernel<<<grid, kWarp, bytes, stream>>>(tq, tk, tv, tdo, lse, delta, static_cast<T*>(dk), static_cast<T*>(dv), p);
    check_launch("attention_backward (dk, dv)");
  });
}

}  // namespace gpuml::cuda
