// Reference scaled dot-product attention and its backward: the plain formulas, the whole (Tq, Tk)
// score matrix of one (b, h) at a time, in float64. The specification the cpu and cuda kernels
// (tiled, online softmax, never the whole matrix) are tested against.
#include <cmath>
#include <limits>

#include "backend/ref/ref_kernels.h"
#include "core/philox.h"

namespace gpuml::ref {

namespace {

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

// What the attention of one (b, h) reads: its q, k, v rows (row-major doubles of the whole
// tensors) and which keys each query sees.
struct Heads {
  AttentionDims dims;
  bool causal;
  // Whether query i sees key j: every key, or (causal) keys up to i + Tk - Tq.
  bool sees(int64_t i, int64_t j) const { return !causal || j <= i + dims.causal_shift(); }
  // Row t of head bh of a (B, H, T, D) tensor read with load().
  static const double* row(const std::vector<double>& x, int64_t bh, int64_t t, int64_t rows, int64_t d) {
    return x.data() + (bh * rows + t) * d;
  }
};

double dot(const double* a, const double* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// The factor dropout multiplies probability (bh, i, j) by: 1/(1-p) where its Philox element
// ((bh Tq + i) Tk + j) is kept, 0 where it is dropped; 1 without dropout.
double dropout_factor(const KernelCall& c, const AttentionDims& d, int64_t bh, int64_t i, int64_t j) {
  const Attrs& a = c.attrs;
  if (!a.training || a.p == 0.0) return 1.0;
  const uint64_t element = static_cast<uint64_t>((bh * d.tq + i) * d.tk + j);
  return philox_uniform(a.seed, philox_offset(c), element) >= a.p ? 1.0 / (1.0 - a.p) : 0.0;
}

// attention(q, k, v) -> (o, lse): per query row, the scaled scores of the keys it sees, their
// log-sum-exp, the probabilities exp(s - lse) (dropped out and rescaled), and o = P v.
void attention_kernel(const KernelCall& c) {
  const Heads heads{attention_dims(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs), c.attrs.causal};
  const AttentionDims& d = heads.dims;
  std::vector<double> q = load(c.inputs[0]), k = load(c.inputs[1]), v = load(c.inputs[2]);
  std::vector<double> o(static_cast<size_t>(d.rows() * d.tq * d.d), 0.0), lse(static_cast<size_t>(d.rows() * d.tq));
  std::vector<double> scores(static_cast<size_t>(d.tk));
  for (int64_t bh = 0; bh < d.rows(); ++bh) {
    for (int64_t i = 0; i < d.tq; ++i) {
      const double* qi = Heads::row(q, bh, i, d.tq, d.d);
      double max_score = kMinusInf;
      for (int64_t j = 0; j < d.tk; ++j) {
        scores[j] = heads.sees(i, j) ? d.scale * dot(qi, Heads::row(k, bh, j, d.tk, d.d), d.d) : kMinusInf;
        max_score = std::max(max_score, scores[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < d.tk; ++j) sum += std::exp(scores[j] - max_score);
      const double row_lse = max_score + std::log(sum);
      lse[bh * d.tq + i] = row_lse;
      double* oi = o.data() + (bh * d.tq + i) * d.d;
      for (int64_t j = 0; j < d.tk; ++j) {
        if (!heads.sees(i, j)) continue;
        const double p = std::exp(scores[j] - row_lse) * dropout_factor(c, d, bh, i, j);
        const double* vj = Heads::row(v, bh, j, d.tk, d.d);
        for (int64_t e = 0; e < d.d; ++e) oi[e] += p * vj[e];
      }
    }
  }
  store(c.output, o);
  store(c.extra_outputs[0], lse);
}

// attention_backward(q, k, v, o, do, lse) -> (dq, dk, dv), with P = exp(s - lse) recomputed from
// the kept lse, M the dropout factors and D_i = sum(do_i * o_i) (= sum_j P_ij dP_ij):
//   dv_j = sum_i P_ij M_ij do_i,  dP_ij = M_ij do_i . v_j,  dS_ij = P_ij (dP_ij - D_i),
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i.
void attention_backward_kernel(const KernelCall& c) {
  const Heads heads{attention_dims(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs), c.attrs.causal};
  const AttentionDims& d = heads.dims;
  std::vector<double> q = load(c.inputs[0]), k = load(c.inputs[1]), v = load(c.inputs[2]);
  std::vector<double> o = load(c.inputs[3]), dout = load(c.inputs[4]), lse = load(c.inputs[5]);
  std::vector<double> dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
  for (int64_t bh = 0; bh < d.rows(); ++bh) {
    for (int64_t i = 0; i < d.tq; ++i) {
      const double* qi = Heads::row(q, bh, i, d.tq, d.d);
      const double* doi = Heads::row(dout, bh, i, d.tq, d.d);
      const double di = dot(doi, Heads::row(o, bh, i, d.tq, d.d), d.d);
      double* dqi = dq.data() + (bh * d.tq + i) * d.d;
      for (int64_t j = 0; j < d.tk; ++j) {
        if (!heads.sees(i, j)) continue;
        const double* kj = Heads::row(k, bh, j, d.tk, d.d);
        const double* vj = Heads::row(v, bh, j, d.tk, d.d);
        double* dkj = dk.data() + (bh * d.tk + j) * d.d;
        double* dvj = dv.data() + (bh * d.tk + j) * d.d;
        const double p = std::exp(d.scale * dot(qi, kj, d.d) - lse[bh * d.tq + i]);
        const double m = dropout_factor(c, d, bh, i, j);
        const double dp = m * dot(doi, vj, d.d);
        const double ds = p * (dp - di);
        for (int64_t e = 0; e < d.d; ++e) {
          dvj[e] += p * m * doi[e];
          dqi[e] += d.scale * ds * kj[e];
          dkj[e] += d.scale * ds * qi[e];
        }
      }
    }
  }
  store(c.output, dq);
  store(c.extra_outputs[0], dk);
  store(c.extra_outputs[1], dv);
}

}  // namespace

std::vector<KernelEntry> attention_kernels() {
  return {
      {OpId::attention, attention_kernel, kFloatDTypes},
      {OpId::attention_backward, attention_backward_kernel, kFloatDTypes},
  };
}

}  // namespace gpuml::ref
