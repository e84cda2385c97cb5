// cross_entropy (fused log-softmax) and its backward, layer_norm and batch_norm with their
// backwards, as OpenMP loops over rows (layer_norm, cross_entropy) or channels (batch_norm).
// Statistics accumulate in double, as ref does. Inputs are contiguous (registered that way).
// cross_entropy keeps each row's log-sum-exp, so its backward is one pass over the logits that
// writes (softmax - onehot) * scale (llm.c's fused classifier); exponentials are taken in the
// compute type (f32, f64 for f64), as the gradient is.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::initializer_list<DType> kFloat{DType::f32, DType::f64, DType::bf16, DType::f16};

// Labels (N,) as int64 with -1 for ignored rows; checked before any parallel loop runs.
std::vector<int64_t> checked_labels(const Tensor& labels, int64_t classes, int64_t ignore_index, const char* op) {
  std::vector<int64_t> out(static_cast<size_t>(labels.numel()));
  dispatch_dtype(labels.dtype(), [&]<typename L>(L) {
    if constexpr (std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t>) {
      const L* p = ptr<const L>(labels);
      for (size_t row = 0; row < out.size(); ++row) {
        int64_t label = static_cast<int64_t>(p[row]);
        if (label == ignore_index) {
          out[row] = -1;
          continue;
        }
        GPUML_CHECK(label >= 0 && label < classes,
                    "{}: row {} has label {}, outside [0, {}) and not the ignore_index {}", op, row, label,
                    classes, ignore_index);
        out[row] = label;
      }
    } else {
      GPUML_FAIL(ErrorKind::DType, "{}: labels must be i32 or i64, got {}", op, labels.dtype());
    }
  });
  return out;
}

// log(sum(exp(row))) computed stably: the max in the compute type (exact), each exponential in
// it too, their sum in double.
template <typename T>
double log_sum_exp(const T* row, int64_t n) {
  using C = Compute<T>;
  C m = -std::numeric_limits<C>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, load(row[j]));
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) sum += static_cast<double>(std::exp(load(row[j]) - m));
  return static_cast<double>(m) + std::log(sum);
}

// (logits (N, C), labels (N,)) -> (loss (), lse (N,) in the compute type: every row's, ignored
// ones too).
void cross_entropy_kernel(const KernelCall& call) {
  const Tensor& logits = call.inputs[0];
  const int64_t rows = logits.shape()[0], classes = logits.shape()[1];
  std::vector<int64_t> labels = checked_labels(call.inputs[1], classes, call.attrs.ignore_index, "cross_entropy");
  dispatch_dtype(logits.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      using C = Compute<T>;  // lse's dtype (type_rules: cross_entropy_lse_type)
      const T* px = ptr<const T>(logits);
      C* plse = ptr<C>(call.extra_outputs[0]);
      int64_t kept = 0;
      for (int64_t label : labels) kept += label >= 0;
      const double total = ordered_sum<double>(rows, rows * classes * 4, [&](int64_t begin, int64_t end) {
        double acc = 0.0;
        for (int64_t r = begin; r < end; ++r) {
          const T* row = px + r * classes;
          const double lse = log_sum_exp(row, classes);
          plse[r] = static_cast<C>(lse);
          if (labels[r] >= 0) acc += lse - static_cast<double>(load(row[labels[r]]));
        }
        return acc;
      });
      ptr<T>(call.output)[0] = from_double<T>(kept == 0 ? kNaN : total / static_cast<double>(kept));
    }
  });
}

// (logits, labels, dloss (), lse (N,)) -> (exp(logits - lse) - onehot) * dloss / kept on kept
// rows, 0 on ignored rows: one read of each logit, one write of each gradient.
void cross_entropy_backward_kernel(const KernelCall& call) {
  const Tensor& logits = call.inputs[0];
  const int64_t rows = logits.shape()[0], classes = logits.shape()[1];
  std::vector<int64_t> labels =
      checked_labels(call.inputs[1], classes, call.attrs.ignore_index, "cross_entropy_backward");
  int64_t kept = 0;
  for (int64_t label : labels) kept += label >= 0;
  dispatch_dtype(logits.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      using C = Compute<T>;
      const T* px = ptr<const T>(logits);
      const C* plse = ptr<const C>(call.inputs[3]);  // (N,)
      T* pg = ptr<T>(call.output);
      // dloss may have another dtype than the logits (bf16 logits, an f32 loss scale): read it as its own.
      const C scale = static_cast<C>(call.inputs[2].item_as_double(0) / static_cast<double>(kept));
      parallel_for(rows, rows * classes * 4, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const T* row = px + r * classes;
          T* grad = pg + r * classes;
          if (labels[r] < 0) {
            for (int64_t j = 0; j < classes; ++j) grad[j] = from_double<T>(0.0);
            continue;
          }
          const C lse = plse[r];
          for (int64_t j = 0; j < classes; ++j) grad[j] = store<T>(std::exp(load(row[j]) - lse) * scale);
          const int64_t label = labels[r];
          grad[label] = store<T>((std::exp(load(row[label]) - lse) - C(1)) * scale);
        }
      });
    }
  });
}

// A row of n T as C: the row itself when T is C, else its values widened into buf. The loops below
// then read one type: widening inside them (bf16 -> f32 -> f64 per element) measured 1.7x slower.
template <typename T, typename C>
[[gnu::always_inline]] inline const C* row_as(const T* row, int64_t n, C* buf) {
  if constexpr (std::is_same_v<T, C>) {
    return row;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) buf[i] = load(row[i]);
    return buf;
  }
}

// layer_norm over rows [r0, r1): each row's mean and rstd (sums in double, as ref, by lane_sum),
// kept in C, then y = (x - mean) * rstd * w + b. Inlined into baseline, AVX2 + FMA and AVX-512
// functions below (4 or 8 doubles an instruction, not 2). W, the parameters' type: T, or f32 beside a bf16/f16 x.
// buf: d values of scratch.
template <typename T, typename W, typename C>
[[gnu::always_inline]] inline void norm_rows(const T* x, const W* w, const W* b, T* y, C* mean, C* rstd, int64_t d,
                                             double eps, int64_t r0, int64_t r1, C* buf) {
  for (int64_t r = r0; r < r1; ++r) {
    const C* xr = row_as(x + r * d, d, buf);
    T* yr = y + r * d;
    const double row_mean = lane_sum<double>(d, [&](int64_t i) { return static_cast<double>(xr[i]); }) /
                            static_cast<double>(d);
    const double sq = lane_sum<double>(d, [&](int64_t i) {
      const double dev = static_cast<double>(xr[i]) - row_mean;
      return dev * dev;
    });
    const C m = static_cast<C>(row_mean), s = static_cast<C>(1.0 / std::sqrt(sq / static_cast<double>(d) + eps));
    mean[r] = m;
    rstd[r] = s;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = store<T>((xr[j] - m) * s * load(w[j]) + load(b[j]));
  }
}

// layer_norm_backward over rows [r0, r1), given (mean, rstd) as layer_norm kept them:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w,  xhat = (x - mean) * rstd,
// and the block's share of the parameters' gradients, part_w[j] = sum dy * xhat and part_b[j] =
// sum dy over its rows, in the same pass over x and dy. Sums in C (f32, f64 for f64): a row is
// at most a few thousand products and a block 32 rows, and the blocks are added in double
// (layer_norm_backward_kernel). Inlined into baseline, AVX2 + FMA and AVX-512 functions below.
// buf: 2 d values of scratch.
template <typename T, typename W, typename C>
[[gnu::always_inline]] inline void norm_backward_rows(const T* x, const W* w, const T* dy, const C* mean,
                                                      const C* rstd, T* dx, int64_t d, int64_t r0, int64_t r1,
                                                      C* part_w, C* part_b, C* buf) {
  std::fill(part_w, part_w + d, C(0));
  std::fill(part_b, part_b + d, C(0));
  for (int64_t r = r0; r < r1; ++r) {
    const C *xr = row_as(x + r * d, d, buf), *dyr = row_as(dy + r * d, d, buf + d);
    T* dxr = dx + r * d;
    const C m = mean[r], s = rstd[r];
    C g_sum = 0, gx_sum = 0;
#pragma omp simd reduction(+ : g_sum, gx_sum)
    for (int64_t j = 0; j < d; ++j) {
      const C xhat = (xr[j] - m) * s, dyj = dyr[j], g = dyj * load(w[j]);
      g_sum += g;
      gx_sum += g * xhat;
      part_w[j] += dyj * xhat;
      part_b[j] += dyj;
    }
    const C g_mean = g_sum / static_cast<C>(d), gx_mean = gx_sum / static_cast<C>(d);
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      const C xhat = (xr[j] - m) * s, g = dyr[j] * load(w[j]);
      dxr[j] = store<T>(s * (g - g_mean - xhat * gx_mean));
    }
  }
}
#define GPUML_NORM_ROWS(T, W, C)                                                                              \
  void norm_rows(const T* x, const W* w, const W* b, T* y, C* mean, C* rstd, int64_t d, double eps, int64_t r0,   \
                 int64_t r1, C* buf) {                                                                             \
    gpuml::cpu::norm_rows<T, W, C>(x, w, b, y, mean, rstd, d, eps, r0, r1, buf);                                  \
  }                                                                                                                \
  void norm_backward_rows(const T* x, const W* w, const T* dy, const C* mean, const C* rstd, T* dx, int64_t d,   \
                          int64_t r0, int64_t r1, C* part_w, C* part_b, C* buf) {                               \
    gpuml::cpu::norm_backward_rows<T, W, C>(x, w, dy, mean, rstd, dx, d, r0, r1, part_w, part_b, buf);            \
  }
// Every (x, parameters) pair of types layer_norm takes.
#define GPUML_NORM_ROWS_ALL          \
  GPUML_NORM_ROWS(float, float, float) \
  GPUML_NORM_ROWS(bf16, bf16, float)   \
  GPUML_NORM_ROWS(f16, f16, float)     \
  GPUML_NORM_ROWS(bf16, float, float)  \
  GPUML_NORM_ROWS(f16, float, float)   \
  GPUML_NORM_ROWS(double, double, double)
namespace portable {
GPUML_NORM_ROWS_ALL
}  // namespace portable
GPUML_BEGIN_AVX2
namespace avx2 {
GPUML_NORM_ROWS_ALL
}  // namespace avx2
GPUML_END_TARGET
GPUML_BEGIN_AVX512
namespace avx512 {
GPUML_NORM_ROWS_ALL
}  // namespace avx512
GPUML_END_TARGET
#undef GPUML_NORM_ROWS_ALL
#undef GPUML_NORM_ROWS

// fn.template operator()<T, W>() for layer_norm's x type T and parameter type W: every float T with
// W = T, and bf16/f16 with W = f32 (type_rules.cpp).
template <typename Fn>
void dispatch_norm_types(DType x, DType w, Fn&& fn) {
  if (x == DType::bf16 && w == DType::f32) fn.template operator()<bf16, float>();
  else if (x == DType::f16 && w == DType::f32) fn.template operator()<f16, float>();
  else if (x == DType::f32) fn.template operator()<float, float>();
  else if (x == DType::f64) fn.template operator()<double, double>();
  else if (x == DType::bf16) fn.template operator()<bf16, bf16>();
  else if (x == DType::f16) fn.template operator()<f16, f16>();
  else GPUML_FAIL(ErrorKind::Internal, "layer_norm: no cpu kernel for x {} with parameters {}", x, w);
}

// layer_norm(x, w, b) -> (y, mean, rstd): rows of D = prod(shape[axis:]) normalised, then scaled
// and shifted; each row's mean and rstd, as y used them (Compute<T>: f32, f64 for f64), are kept
// for the backward.
void layer_norm_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  const int64_t d = call.inputs[1].numel(), rows = d == 0 ? 0 : x.numel() / d;
  const double eps = call.attrs.eps;
  dispatch_norm_types(x.dtype(), call.inputs[1].dtype(), [&]<typename T, typename W>() {
    using C = Compute<T>;  // the statistics' dtype (type_rules: layer_norm_stats_type)
    const T* px = ptr<const T>(x);
    const W *pw = ptr<const W>(call.inputs[1]), *pb = ptr<const W>(call.inputs[2]);
    T* py = ptr<T>(out);
    C *pmean = ptr<C>(call.extra_outputs[0]), *prstd = ptr<C>(call.extra_outputs[1]);
    parallel_for(rows, rows * d * 4, [&](int64_t begin, int64_t end) {
      std::vector<C> buf(static_cast<size_t>(d));
      GPUML_ISA_CALL(norm_rows, px, pw, pb, py, pmean, prstd, d, eps, begin, end, buf.data());
    });
  });
}

// (x, w, dy, mean, rstd) -> (dx, dw, db). Rows go in blocks of 32, in parallel; each block leaves
// its column sums in `parts`, which are then added in block order in double: the same result
// whatever the thread count.
void layer_norm_backward_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  const int64_t d = call.inputs[1].numel(), rows = d == 0 ? 0 : x.numel() / d;
  dispatch_norm_types(x.dtype(), call.inputs[1].dtype(), [&]<typename T, typename W>() {
    using C = Compute<T>;
    const T *px = ptr<const T>(x), *pdy = ptr<const T>(call.inputs[2]);
    const W* pw = ptr<const W>(call.inputs[1]);
    const C *pmean = ptr<const C>(call.inputs[3]), *prstd = ptr<const C>(call.inputs[4]);
    T* pdx = ptr<T>(out);
    W *pdw = ptr<W>(call.extra_outputs[0]), *pdb = ptr<W>(call.extra_outputs[1]);
    constexpr int64_t kBlockRows = 32;
    const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
    std::vector<C> parts(static_cast<size_t>(blocks * 2 * d));
    parallel_for(blocks, rows * d * 8, [&](int64_t begin, int64_t end) {
      std::vector<C> buf(static_cast<size_t>(2 * d));
      for (int64_t b = begin; b < end; ++b) {
        const int64_t r0 = b * kBlockRows, r1 = std::min(rows, r0 + kBlockRows);
        C* part = parts.data() + b * 2 * d;
        GPUML_ISA_CALL(norm_backward_rows, px, pw, pdy, pmean, prstd, pdx, d, r0, r1, part, part + d, buf.data());
      }
    });
    parallel_for(d, blocks * d * 2, [&](int64_t begin, int64_t end) {  // no rows: zeros
      std::vector<double> sw(static_cast<size_t>(end - begin), 0.0), sb(sw.size(), 0.0);
      for (int64_t b = 0; b < blocks; ++b) {
        const C* part = parts.data() + b * 2 * d;
        for (int64_t j = begin; j < end; ++j) {
          sw[j - begin] += static_cast<double>(part[j]);
          sb[j - begin] += static_cast<double>(part[d + j]);
        }
      }
      for (int64_t j = begin; j < end; ++j) {
        pdw[j] = from_double<W>(sw[j - begin]);
        pdb[j] = from_double<W>(sb[j - begin]);
      }
    });
  });
}

// x (N, C, S...) read as (N, C, S): channel c's values are N runs of S contiguous elements.
struct ChannelLayout {
  int64_t n, c, s;
};
ChannelLayout channel_layout(const Tensor& x) {
  int64_t s = 1;
  for (int d = 2; d < x.ndim(); ++d) s *= x.shape()[d];
  return {x.shape()[0], x.shape()[1], s};
}

template <typename T>
void channel_stats(const T* x, const ChannelLayout& l, int64_t c, double& mean, double& var) {
  double sum = 0.0;
  for (int64_t i = 0; i < l.n; ++i) {
    const T* p = x + (i * l.c + c) * l.s;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < l.s; ++j) sum += static_cast<double>(load(p[j]));
  }
  const double count = static_cast<double>(l.n * l.s);
  mean = sum / count;
  double sq = 0.0;
  for (int64_t i = 0; i < l.n; ++i) {
    const T* p = x + (i * l.c + c) * l.s;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < l.s; ++j) {
      double d = static_cast<double>(load(p[j])) - mean;
      sq += d * d;
    }
  }
  var = sq / count;  // NaN for an empty batch, as ref
}

// batch_norm(x, w, b, running_mean, running_var): batch statistics when training, else the
// running ones (which the op never updates).
void batch_norm_kernel(const KernelCall& call) {
  const Tensor& x = call.inputs[0];
  const ChannelLayout l = channel_layout(x);
  const double eps = call.attrs.eps;
  const bool training = call.attrs.training;
  dispatch_dtype(x.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      using C = Compute<T>;
      const T* px = ptr<const T>(x);
      const T *pw = ptr<const T>(call.inputs[1]), *pb = ptr<const T>(call.inputs[2]);
      const T *prm = ptr<const T>(call.inputs[3]), *prv = ptr<const T>(call.inputs[4]);
      T* py = ptr<T>(call.output);
      parallel_for(l.c, l.n * l.c * l.s * 4, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          double mean, var;
          if (training) channel_stats(px, l, c, mean, var);
          else mean = to_double(prm[c]), var = to_double(prv[c]);
          const double scale = to_double(pw[c]) / std::sqrt(var + eps);
          const C a = static_cast<C>(scale), b = static_cast<C>(to_double(pb[c]) - mean * scale);
          for (int64_t i = 0; i < l.n; ++i) {
            const T* xp = px + (i * l.c + c) * l.s;
            T* yp = py + (i * l.c + c) * l.s;
#pragma omp simd
            for (int64_t j = 0; j < l.s; ++j) yp[j] = store<T>(load(xp[j]) * a + b);
          }
        }
      });
    }
  });
}

// dx for training mode: w * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)) per channel.
void batch_norm_backward_kernel(const KernelCall& call) {  // (x, w, dy) -> dx
  const Tensor& x = call.inputs[0];
  const ChannelLayout l = channel_layout(x);
  const double eps = call.attrs.eps;
  dispatch_dtype(x.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_floating_point_v<Compute<T>>) {
      const T *px = ptr<const T>(x), *pw = ptr<const T>(call.inputs[1]), *pdy = ptr<const T>(call.inputs[2]);
      T* pdx = ptr<T>(call.output);
      parallel_for(l.c, l.n * l.c * l.s * 8, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          double mean, var;
          channel_stats(px, l, c, mean, var);
          const double rstd = 1.0 / std::sqrt(var + eps), count = static_cast<double>(l.n * l.s);
          double dy_sum = 0.0, dyx_sum = 0.0;
          for (int64_t i = 0; i < l.n; ++i) {
            const T *xp = px + (i * l.c + c) * l.s, *dp = pdy + (i * l.c + c) * l.s;
#pragma omp simd reduction(+ : dy_sum, dyx_sum)
            for (int64_t j = 0; j < l.s; ++j) {
              double dy = static_cast<double>(load(dp[j]));
              dy_sum += dy;
              dyx_sum += dy * (static_cast<double>(load(xp[j])) - mean) * rstd;
            }
          }
          const double dy_mean = dy_sum / count, dyx_mean = dyx_sum / count, w = to_double(pw[c]);
          for (int64_t i = 0; i < l.n; ++i) {
            const T *xp = px + (i * l.c + c) * l.s, *dp = pdy + (i * l.c + c) * l.s;
            T* out = pdx + (i * l.c + c) * l.s;
            for (int64_t j = 0; j < l.s; ++j) {
              double xhat = (static_cast<double>(load(xp[j])) - mean) * rstd;
              out[j] = from_double<T>(w * rstd * (static_cast<double>(load(dp[j])) - dy_mean - xhat * dyx_mean));
            }
          }
        }
      });
    }
  });
}

}  // namespace

void register_norm_loss_kernels(CpuBackend& backend) {
  backend.add_kernel(OpId::cross_entropy, cross_entropy_kernel, kFloat, false);
  backend.add_kernel(OpId::cross_entropy_backward, cross_entropy_backward_kernel, kFloat, false);
  backend.add_kernel(OpId::layer_norm, layer_norm_kernel, kFloat, false);
  backend.add_kernel(OpId::layer_norm_backward, layer_norm_backward_kernel, kFloat, false);
  backend.add_kernel(OpId::batch_norm, batch_norm_kernel, kFloat, false);
  backend.add_kernel(OpId::batch_norm_backward, batch_norm_backward_kernel, kFloat, false);
}

}  // namespace gpuml::cpu
