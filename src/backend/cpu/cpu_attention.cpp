// Scaled dot-product attention and its backward on the CPU, FlashAttention-style: keys are visited
// in tiles with an online softmax (a running row maximum and sum rescale what was accumulated), so
// a head needs O(T) memory, never the (Tq, Tk) score matrix. OpenMP runs over (batch x head x
// query tile) in the forward and over (batch x head) in the backward, whose dq accumulates over
// key tiles in one buffer per head (FlashAttention-2's loop order: key tiles outside).
//
// Tiles are packed into contiguous Compute<T> buffers (k transposed for the scores, so that the
// inner loops run along keys or along the head dim with unit stride and vectorise), which also
// reads strided q, k, v (the slices and permutes of a fused qkv projection) without a copy of
// the whole tensor, and converts bf16/f16 to f32 once per tile.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"
#include "core/philox.h"

namespace gpuml::cpu {

namespace {

constexpr std::initializer_list<DType> kFloat{DType::f32, DType::f64, DType::bf16, DType::f16};

constexpr int64_t kQueryTile = 32;  // query rows per forward work item and per backward inner step
constexpr int64_t kKeyTile = 64;    // keys per tile: (D, 64) of k and (64, D) of v stay in L1/L2

// A (B, H, T, D) tensor read through its strides: row t of head bh = b * H + h.
template <typename T>
struct HeadRows {
  const T* base;
  int64_t heads, stride_b, stride_h, stride_t, stride_e;
  const T* row(int64_t bh, int64_t t) const {
    return base + (bh / heads) * stride_b + (bh % heads) * stride_h + t * stride_t;
  }
};
template <typename T>
HeadRows<T> head_rows(const Tensor& x) {
  const Strides& s = x.strides();
  return {ptr<const T>(x), x.dim(1), s[0], s[1], s[2], s[3]};
}

// rows [t0, t0 + n) of head bh, times `factor`, into dst (n, d) row-major.
template <typename T, typename C>
void pack_rows(const HeadRows<T>& x, int64_t bh, int64_t t0, int64_t n, int64_t d, C factor, C* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* src = x.row(bh, t0 + r);
    C* out = dst + r * d;
    if (x.stride_e == 1) {
      for (int64_t e = 0; e < d; ++e) out[e] = load(src[e]) * factor;
    } else {
      for (int64_t e = 0; e < d; ++e) out[e] = load(src[e * x.stride_e]) * factor;
    }
  }
}

// rows [t0, t0 + n) of head bh transposed into dst (d, kKeyTile): dst[e * kKeyTile + r].
template <typename T, typename C>
void pack_columns(const HeadRows<T>& x, int64_t bh, int64_t t0, int64_t n, int64_t d, C* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* src = x.row(bh, t0 + r);
    for (int64_t e = 0; e < d; ++e) dst[e * kKeyTile + r] = load(src[e * x.stride_e]);
  }
}

// scores[j] = sum_e a[e] * columns[e * kKeyTile + j] for j < n: a row times a transposed tile,
// accumulated along keys so that the inner loop is a unit-stride axpy.
template <typename C>
void row_times_columns(const C* a, const C* columns, int64_t n, int64_t d, C* scores) {
  std::fill(scores, scores + n, C(0));
  for (int64_t e = 0; e < d; ++e) {
    const C ae = a[e];
    const C* col = columns + e * kKeyTile;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) scores[j] += ae * col[j];
  }
}

// y[e] += a * x[e] for e < d.
template <typename C>
inline void axpy(C a, const C* x, int64_t d, C* y) {
#pragma omp simd
  for (int64_t e = 0; e < d; ++e) y[e] += a * x[e];
}

// How many keys of the tile starting at key j0 (n of them) query i sees: all, or (causal) those
// up to i + Tk - Tq.
inline int64_t visible_keys(const AttentionDims& dims, bool causal, int64_t i, int64_t j0, int64_t n) {
  if (!causal) return n;
  return std::clamp<int64_t>(i + dims.causal_shift() - j0 + 1, 0, n);
}

// The dropout of attention (ref_attention.cpp's dropout_factor, a Philox block at a time):
// factor[j] = 1/(1-p) where element first + j of (seed, offset) is kept, else 0, for j < n.
struct AttentionDropout {
  bool on;
  double p;
  uint64_t seed, offset;

  template <typename C>
  void factors(uint64_t first, int64_t n, C* factor) const {
    const C kept = static_cast<C>(1.0 / (1.0 - p));
    uint64_t element = first;
    int64_t j = 0;
    while (j < n) {
      const PhiloxBlock bits = philox4x32_10(offset + element / 4, seed);
      for (uint64_t lane = element % 4; lane < 4 && j < n; ++lane, ++j, ++element)
        factor[j] = static_cast<double>(philox_uniform_of_bits(bits.v[lane])) >= p ? kept : C(0);
    }
  }
};
AttentionDropout dropout_of(const KernelCall& call) {
  const Attrs& a = call.attrs;
  return {a.training && a.p > 0.0, a.p, a.seed, philox_offset(call)};
}

// The last key (exclusive) any of queries [i0, i0 + n) sees.
inline int64_t key_end(const AttentionDims& dims, bool causal, int64_t i0, int64_t n) {
  return causal ? std::min(dims.tk, i0 + n + dims.causal_shift()) : dims.tk;
}

// attention(q, k, v) -> (o (B, H, Tq, D), lse (B, H, Tq)). One work item: a query tile of one
// head. Per row r: m the running maximum of the scaled scores, l the running sum of
// exp(score - m), acc the running sum of exp(score - m) * dropout * v; a new key tile with a
// larger maximum rescales l and acc by exp(m_old - m_new). Then o = acc / l, lse = m + log l.
void attention_kernel(const KernelCall& call) {
  const Tensor &q = call.inputs[0], &k = call.inputs[1], &v = call.inputs[2];
  const AttentionDims dims = attention_dims(q.shape(), k.shape(), call.attrs);
  const bool causal = call.attrs.causal;
  const AttentionDropout dropout = dropout_of(call);
  const int64_t d = dims.d, query_tiles = (dims.tq + kQueryTile - 1) / kQueryTile;
  dispatch_dtype(q.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      using C = Compute<T>;
      const HeadRows<T> qr = head_rows<T>(q), kr = head_rows<T>(k), vr = head_rows<T>(v);
      T* out = ptr<T>(call.output);                  // (B, H, Tq, D)
      C* lse_out = ptr<C>(call.extra_outputs[0]);    // (B, H, Tq)
      const int64_t work = dims.rows() * dims.tq * dims.tk * d * 4;
      parallel_for(dims.rows() * query_tiles, work, [&](int64_t begin, int64_t end) {
        std::vector<C> q_tile(kQueryTile * d), acc(kQueryTile * d);      // (QT, D)
        std::vector<C> k_columns(d * kKeyTile), v_tile(kKeyTile * d);    // (D, KT), (KT, D)
        std::vector<C> row_max(kQueryTile), row_sum(kQueryTile), scores(kKeyTile), factor(kKeyTile);
        for (int64_t item = begin; item < end; ++item) {
          const int64_t bh = item / query_tiles, i0 = (item % query_tiles) * kQueryTile;
          const int64_t nq = std::min(kQueryTile, dims.tq - i0);
          pack_rows(qr, bh, i0, nq, d, static_cast<C>(dims.scale), q_tile.data());  // scaled once
          std::fill(acc.begin(), acc.end(), C(0));
          std::fill(row_max.begin(), row_max.end(), -std::numeric_limits<C>::infinity());
          std::fill(row_sum.begin(), row_sum.end(), C(0));
          const int64_t keys = key_end(dims, causal, i0, nq);
          for (int64_t j0 = 0; j0 < keys; j0 += kKeyTile) {
            const int64_t nk = std::min(kKeyTile, keys - j0);
            pack_columns(kr, bh, j0, nk, d, k_columns.data());
            pack_rows(vr, bh, j0, nk, d, C(1), v_tile.data());
            for (int64_t r = 0; r < nq; ++r) {
              const int64_t i = i0 + r, seen = visible_keys(dims, causal, i, j0, nk);
              if (seen == 0) continue;
              C* s = scores.data();
              row_times_columns(q_tile.data() + r * d, k_columns.data(), seen, d, s);
              C tile_max = s[0];
              for (int64_t j = 1; j < seen; ++j) tile_max = std::max(tile_max, s[j]);
              const C new_max = std::max(row_max[r], tile_max);
              const C rescale = std::exp(row_max[r] - new_max);  // 0 for the first tile (max -inf)
              C sum = 0;
              for (int64_t j = 0; j < seen; ++j) {
                s[j] = std::exp(s[j] - new_max);
                sum += s[j];
              }
              row_sum[r] = row_sum[r] * rescale + sum;
              row_max[r] = new_max;
              if (dropout.on) {
                dropout.factors(static_cast<uint64_t>((bh * dims.tq + i) * dims.tk + j0), seen, factor.data());
                for (int64_t j = 0; j < seen; ++j) s[j] *= factor[j];
              }
              C* acc_row = acc.data() + r * d;
              if (rescale != C(1))
                for (int64_t e = 0; e < d; ++e) acc_row[e] *= rescale;
              for (int64_t j = 0; j < seen; ++j)
                if (s[j] != C(0)) axpy(s[j], v_tile.data() + j * d, d, acc_row);
            }
          }
          for (int64_t r = 0; r < nq; ++r) {
            const int64_t row = bh * dims.tq + i0 + r;
            const C inv = C(1) / row_sum[r];
            T* o_row = out + row * d;
            for (int64_t e = 0; e < d; ++e) o_row[e] = store<T>(acc[r * d + e] * inv);
            lse_out[row] = row_max[r] + std::log(row_sum[r]);
          }
        }
      });
    }
  });
}

// attention_backward(q, k, v, o, do, lse) -> (dq, dk, dv), one head per work item. For each key
// tile (dk, dv accumulate in the tile's buffers) and each query tile that sees it:
//   P = exp(s - lse) (s recomputed), M the dropout factors, D_i = do_i . o_i,
//   dv_j += P_ij M_ij do_i,  dS_ij = P_ij (M_ij do_i . v_j - D_i),
//   dq_i += scale dS_ij k_j (a per-head (Tq, D) buffer),  dk_j += dS_ij (scale q_i).
void attention_backward_kernel(const KernelCall& call) {
  const Tensor &q = call.inputs[0], &k = call.inputs[1], &v = call.inputs[2];
  const AttentionDims dims = attention_dims(q.shape(), k.shape(), call.attrs);
  const bool causal = call.attrs.causal;
  const AttentionDropout dropout = dropout_of(call);
  const int64_t d = dims.d;
  dispatch_dtype(q.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      using C = Compute<T>;
      const HeadRows<T> qr = head_rows<T>(q), kr = head_rows<T>(k), vr = head_rows<T>(v);
      const HeadRows<T> o_rows = head_rows<T>(call.inputs[3]), do_rows = head_rows<T>(call.inputs[4]);
      const Tensor& lse = call.inputs[5];  // (B, H, Tq) in C, maybe strided
      const C* lse_base = ptr<const C>(lse);
      T *dq_out = ptr<T>(call.output), *dk_out = ptr<T>(call.extra_outputs[0]), *dv_out = ptr<T>(call.extra_outputs[1]);
      const int64_t work = dims.rows() * dims.tq * dims.tk * d * 10;
      parallel_for(dims.rows(), work, [&](int64_t begin, int64_t end) {
        std::vector<C> dq_acc(dims.tq * d), delta(dims.tq), row_lse(dims.tq);  // per head: O(T)
        std::vector<C> q_tile(kQueryTile * d), do_tile(kQueryTile * d), o_row(d);
        std::vector<C> k_tile(kKeyTile * d), k_columns(d * kKeyTile), v_columns(d * kKeyTile);
        std::vector<C> dk_acc(kKeyTile * d), dv_acc(kKeyTile * d);
        std::vector<C> p(kKeyTile), dp(kKeyTile), factor(kKeyTile);
        for (int64_t bh = begin; bh < end; ++bh) {
          const int64_t b = bh / dims.heads, h = bh % dims.heads;
          for (int64_t i = 0; i < dims.tq; ++i) {
            pack_rows(o_rows, bh, i, 1, d, C(1), o_row.data());
            pack_rows(do_rows, bh, i, 1, d, C(1), do_tile.data());
            C dot = 0;
            for (int64_t e = 0; e < d; ++e) dot += do_tile[e] * o_row[e];
            delta[i] = dot;
            row_lse[i] = lse_base[b * lse.strides()[0] + h * lse.strides()[1] + i * lse.strides()[2]];
          }
          std::fill(dq_acc.begin(), dq_acc.end(), C(0));
          for (int64_t j0 = 0; j0 < dims.tk; j0 += kKeyTile) {
            const int64_t nk = std::min(kKeyTile, dims.tk - j0);
            pack_rows(kr, bh, j0, nk, d, C(1), k_tile.data());
            pack_columns(kr, bh, j0, nk, d, k_columns.data());
            pack_columns(vr, bh, j0, nk, d, v_columns.data());
            std::fill(dk_acc.begin(), dk_acc.end(), C(0));
            std::fill(dv_acc.begin(), dv_acc.end(), C(0));
            // The first query that sees key j0: 0, or (causal) j0 - (Tk - Tq).
            const int64_t first_query = causal ? std::max<int64_t>(0, j0 - dims.causal_shift()) : 0;
            for (int64_t i0 = first_query; i0 < dims.tq; i0 += kQueryTile) {
              const int64_t nq = std::min(kQueryTile, dims.tq - i0);
              pack_rows(qr, bh, i0, nq, d, static_cast<C>(dims.scale), q_tile.data());
              pack_rows(do_rows, bh, i0, nq, d, C(1), do_tile.data());
              for (int64_t r = 0; r < nq; ++r) {
                const int64_t i = i0 + r, seen = visible_keys(dims, causal, i, j0, nk);
                if (seen == 0) continue;
                const C* q_scaled = q_tile.data() + r * d;
                const C* do_row = do_tile.data() + r * d;
                row_times_columns(q_scaled, k_columns.data(), seen, d, p.data());
                for (int64_t j = 0; j < seen; ++j) p[j] = std::exp(p[j] - row_lse[i]);
                row_times_columns(do_row, v_columns.data(), seen, d, dp.data());
                if (dropout.on) {
                  dropout.factors(static_cast<uint64_t>((bh * dims.tq + i) * dims.tk + j0), seen, factor.data());
                  for (int64_t j = 0; j < seen; ++j) dp[j] *= factor[j];
                }
                C* dq_row = dq_acc.data() + i * d;
                for (int64_t j = 0; j < seen; ++j) {
                  const C kept_p = dropout.on ? p[j] * factor[j] : p[j];
                  if (kept_p != C(0)) axpy(kept_p, do_row, d, dv_acc.data() + j * d);
                  const C ds = p[j] * (dp[j] - delta[i]);
                  axpy(ds * static_cast<C>(dims.scale), k_tile.data() + j * d, d, dq_row);
                  axpy(ds, q_scaled, d, dk_acc.data() + j * d);
                }
              }
            }
            for (int64_t j = 0; j < nk; ++j) {
              T* dk_row = dk_out + (bh * dims.tk + j0 + j) * d;
              T* dv_row = dv_out + (bh * dims.tk + j0 + j) * d;
              for (int64_t e = 0; e < d; ++e) {
                dk_row[e] = store<T>(dk_acc[j * d + e]);
                dv_row[e] = store<T>(dv_acc[j * d + e]);
              }
            }
          }
          T* dq_head = dq_out + bh * dims.tq * d;
          for (int64_t x = 0; x < dims.tq * d; ++x) dq_head[x] = store<T>(dq_acc[x]);
        }
      });
    }
  });
}

}  // namespace

void register_attention_kernels(CpuBackend& backend) {
  backend.add_kernel(OpId::attention, attention_kernel, kFloat);  // strided q, k, v read in place
  backend.add_kernel(OpId::attention_backward, attention_backward_kernel, kFloat);
}

}  // namespace gpuml::cpu
