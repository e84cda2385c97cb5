// Reductions (sum, mean, max, argmax) and softmax/log_softmax as OpenMP loops.
// Every reduction becomes a 2-d or 3-d problem: reducing the leading axes of a contiguous tensor
// reads it as (R, K) and accumulates rows (column sums, e.g. a linear bias gradient); reducing the
// axes around one block of kept axes reads it as (A, K, B) and sums runs of B (a conv bias
// gradient); anything else is permuted to (K, R) (kept dims first, copied only when that view is
// not contiguous) and reduces rows.
// Float sums accumulate in double, as ref does, so long rows agree closely.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

enum class Reduction { sum, mean, max };

constexpr int64_t kColumnBlock = 256;  // columns accumulated together stay in L1

// Accumulator type: double for floats (as ref), int64 for integers.
template <typename T>
using Acc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

template <Reduction R, typename T>
inline T finish(Acc<T> acc, int64_t count) {
  if constexpr (R == Reduction::mean) return from_double_wrapping<T>(static_cast<double>(acc) / static_cast<double>(count));
  else return from_double_wrapping<T>(static_cast<double>(acc));
}

template <typename C>
inline C max_of(C best, C v) {
  if constexpr (std::is_floating_point_v<C>) return (v != v || v > best) ? v : best;  // NaN propagates
  else return v > best ? v : best;
}

// The permutation that puts kept dims first and reduced dims last.
std::vector<int64_t> kept_then_reduced(const std::vector<bool>& reduced) {
  std::vector<int64_t> perm;
  for (size_t d = 0; d < reduced.size(); ++d)
    if (!reduced[d]) perm.push_back(static_cast<int64_t>(d));
  for (size_t d = 0; d < reduced.size(); ++d)
    if (reduced[d]) perm.push_back(static_cast<int64_t>(d));
  return perm;
}

template <Reduction R, typename T>
void reduce_rows(const T* x, T* out, int64_t kept, int64_t count) {  // x (kept, count)
  using C = Compute<T>;
  auto row = [&](const T* p) -> T {
    if constexpr (R == Reduction::max) {
      C best = load(p[0]);
      for (int64_t i = 1; i < count; ++i) best = max_of(best, load(p[i]));
      return store<T>(best);
    } else {
      Acc<T> acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < count; ++i) acc += static_cast<Acc<T>>(load(p[i]));
      return finish<R, T>(acc, count);
    }
  };
  if (kept == 1 && count >= kParallelGrain && R != Reduction::max) {
    // One long row: per-thread partial sums, added in a fixed order.
    Acc<T> total = ordered_sum<Acc<T>>(count, count, [&](int64_t begin, int64_t end) {
      Acc<T> acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = begin; i < end; ++i) acc += static_cast<Acc<T>>(load(x[i]));
      return acc;
    });
    out[0] = finish<R, T>(total, count);
    return;
  }
  parallel_for(kept, kept * count, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) out[k] = row(x + k * count);
  });
}

// acc[j] = the sum over `count` rows of column j0 + j of x (count, kept), for j < n. A 16-bit type:
// float sums over runs of 64 rows, added in double (their rounding is far below the result's);
// f32 and f64 straight into double, as ref. Inlined into baseline, AVX2 and AVX-512 copies (2, 4
// or 8 doubles an instruction).
template <typename T>
[[gnu::always_inline]] inline void column_sums(const T* x, int64_t count, int64_t kept, int64_t j0, int64_t n,
                                               double* acc) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) {
    constexpr int64_t kRun = 64;
    float run[kColumnBlock];
    for (int64_t r0 = 0; r0 < count; r0 += kRun) {
      std::fill_n(run, n, 0.0f);
      for (int64_t r = r0; r < std::min(count, r0 + kRun); ++r) {
        const T* row = x + r * kept + j0;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) run[j] += load(row[j]);
      }
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(run[j]);
    }
  } else {
    for (int64_t r = 0; r < count; ++r) {
      const T* row = x + r * kept + j0;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(load(row[j]));
    }
  }
}
#define GPUML_COLUMN_SUMS(T)                                                                                  \
  void column_sums(const T* x, int64_t count, int64_t kept, int64_t j0, int64_t n, double* acc) {            \
    gpuml::cpu::column_sums<T>(x, count, kept, j0, n, acc);                                                   \
  }
#define GPUML_COLUMN_SUMS_ALL GPUML_COLUMN_SUMS(float) GPUML_COLUMN_SUMS(double) GPUML_COLUMN_SUMS(bf16) GPUML_COLUMN_SUMS(f16)
namespace portable {
GPUML_COLUMN_SUMS_ALL
}  // namespace portable
GPUML_BEGIN_AVX2
namespace avx2 {
GPUML_COLUMN_SUMS_ALL
}  // namespace avx2
GPUML_END_TARGET
GPUML_BEGIN_AVX512
namespace avx512 {
GPUML_COLUMN_SUMS_ALL
}  // namespace avx512
GPUML_END_TARGET
#undef GPUML_COLUMN_SUMS_ALL
#undef GPUML_COLUMN_SUMS

template <Reduction R, typename T>
void reduce_columns(const T* x, T* out, int64_t count, int64_t kept) {  // x (count, kept)
  using C = Compute<T>;
  parallel_for(kept, kept * count, [&](int64_t begin, int64_t end) {
    constexpr int64_t kBlock = kColumnBlock;
    for (int64_t j0 = begin; j0 < end; j0 += kBlock) {
      int64_t n = std::min(kBlock, end - j0);
      if constexpr (R == Reduction::max) {
        C best[kBlock];
        for (int64_t j = 0; j < n; ++j) best[j] = load(x[j0 + j]);
        for (int64_t r = 1; r < count; ++r)
          for (int64_t j = 0; j < n; ++j) best[j] = max_of(best[j], load(x[r * kept + j0 + j]));
        for (int64_t j = 0; j < n; ++j) out[j0 + j] = store<T>(best[j]);
      } else if constexpr (std::is_floating_point_v<C>) {
        double acc[kBlock] = {};
        GPUML_ISA_CALL(column_sums, x, count, kept, j0, n, acc);
        for (int64_t j = 0; j < n; ++j) out[j0 + j] = finish<R, T>(acc[j], count);
      } else {
        Acc<T> acc[kBlock] = {};
        for (int64_t r = 0; r < count; ++r) {
          const T* row = x + r * kept + j0;
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<Acc<T>>(load(row[j]));
        }
        for (int64_t j = 0; j < n; ++j) out[j0 + j] = finish<R, T>(acc[j], count);
      }
    }
  });
}

// x (outer, kept, inner) reduced over outer and inner: a conv bias gradient, (N, C, H, W) over
// {0, 2, 3}. Threads split the kept axis and each sums contiguous runs of `inner`, so nothing is
// permuted or copied.
template <Reduction R, typename T>
void reduce_outer_inner(const T* x, T* out, int64_t outer, int64_t kept, int64_t inner) {
  using C = Compute<T>;
  parallel_for(kept, kept * outer * inner, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      if constexpr (R == Reduction::max) {
        C best = load(x[k * inner]);
        for (int64_t o = 0; o < outer; ++o) {
          const T* run = x + (o * kept + k) * inner;
          for (int64_t i = 0; i < inner; ++i) best = max_of(best, load(run[i]));
        }
        out[k] = store<T>(best);
      } else {
        Acc<T> acc = 0;
        for (int64_t o = 0; o < outer; ++o) {
          const T* run = x + (o * kept + k) * inner;
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < inner; ++i) acc += static_cast<Acc<T>>(load(run[i]));
        }
        out[k] = finish<R, T>(acc, outer * inner);
      }
    }
  });
}

// For a contiguous x whose kept dims (ignoring size-1 dims) form one block: the sizes of the
// reduced dims before it, the block and the reduced dims after it. Empty when the kept dims are
// split by a reduced one.
struct OuterKeptInner {
  int64_t outer = 1, kept = 1, inner = 1;
};
std::optional<OuterKeptInner> split_outer_kept_inner(const Shape& shape, const std::vector<bool>& reduced) {
  OuterKeptInner s;
  int phase = 0;  // 0: before the kept block, 1: inside it, 2: after it
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!reduced[d]) {
      if (phase == 2) return std::nullopt;
      phase = 1;
      s.kept *= shape[d];
    } else if (phase == 0) {
      s.outer *= shape[d];
    } else {
      phase = 2;
      s.inner *= shape[d];
    }
  }
  return s;
}

template <Reduction R>
void reduce_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  std::vector<bool> reduced = reduced_axes(call.attrs, x.ndim(), "reduce");
  int64_t kept = out.numel(), count = 1;
  for (int d = 0; d < x.ndim(); ++d)
    if (reduced[d]) count *= x.shape()[d];
  if (kept == 0) return;
  dispatch_dtype(out.dtype(), [&]<typename T>(T) {
    if constexpr (!std::is_same_v<T, bool>) {
      if (count == 0) {  // sum of nothing is 0, mean NaN (max of nothing is a type error)
        fill_value(out, R == Reduction::mean ? std::numeric_limits<double>::quiet_NaN() : 0.0);
        return;
      }
      std::optional<OuterKeptInner> split;
      if (x.is_contiguous() && kept > 1) split = split_outer_kept_inner(x.shape(), reduced);
      if (split && split->inner == 1) {
        reduce_columns<R, T>(ptr<const T>(x), ptr<T>(out), count, kept);
      } else if (split && split->outer > 1) {
        reduce_outer_inner<R, T>(ptr<const T>(x), ptr<T>(out), split->outer, kept, split->inner);
      } else {
        Tensor rows = contiguous_copy(x.permute(kept_then_reduced(reduced)));
        reduce_rows<R, T>(ptr<const T>(rows), ptr<T>(out), kept, count);
      }
    }
  });
}

// argmax along attrs.axis: the first index of the maximum; a NaN counts as the maximum.
void argmax_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  int axis = normalize_axis(call.attrs.axis, x.ndim(), "argmax");
  std::vector<bool> reduced(x.ndim(), false);
  reduced[axis] = true;
  const int64_t kept = out.numel(), count = x.shape()[axis];
  if (kept == 0) return;
  dispatch_dtype(x.dtype(), [&]<typename T>(T) {
    Tensor rows = contiguous_copy(x.permute(kept_then_reduced(reduced)));
    const T* px = ptr<const T>(rows);
    int64_t* po = ptr<int64_t>(out);
    parallel_for(kept, kept * count, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const T* p = px + k * count;
        auto best = load(p[0]);
        int64_t at = 0;
        for (int64_t i = 1; i < count; ++i) {
          auto v = load(p[i]);
          bool better;
          if constexpr (std::is_floating_point_v<decltype(v)>) better = (v != v && best == best) || v > best;
          else better = v > best;
          if (better) best = v, at = i;
        }
        po[k] = at;
      }
    });
  });
}

// softmax / log_softmax along attrs.axis: rows of the axis moved last, stable (max subtracted).
template <bool Log>
void softmax_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  if (out.numel() == 0) return;
  int axis = normalize_axis(call.attrs.axis, x.ndim(), "softmax");
  std::vector<int64_t> perm;
  for (int d = 0; d < x.ndim(); ++d)
    if (d != axis) perm.push_back(d);
  perm.push_back(axis);
  const int64_t n = x.shape()[axis], rows = x.numel() / n;
  bool last = axis == x.ndim() - 1;
  Tensor in = contiguous_copy(x.permute(perm));
  Tensor result = last ? out : Tensor::empty(in.shape(), out.dtype());
  dispatch_dtype(out.dtype(), [&]<typename T>(T) {
    using C = Compute<T>;
    if constexpr (std::is_floating_point_v<C>) {
      const T* px = ptr<const T>(in);
      T* py = ptr<T>(result);
      parallel_for(rows, rows * n * 8, [&](int64_t begin, int64_t end) {
        std::vector<C> e(static_cast<size_t>(n));
        for (int64_t r = begin; r < end; ++r) {
          const T* xr = px + r * n;
          T* yr = py + r * n;
          C m = -std::numeric_limits<C>::infinity();
          for (int64_t j = 0; j < n; ++j) m = std::max(m, load(xr[j]));
          double sum = 0.0;
          for (int64_t j = 0; j < n; ++j) {
            e[j] = std::exp(load(xr[j]) - m);
            sum += e[j];
          }
          if constexpr (Log) {
            C lse = m + static_cast<C>(std::log(sum));
            for (int64_t j = 0; j < n; ++j) yr[j] = store<T>(load(xr[j]) - lse);
          } else {
            C inv = static_cast<C>(1.0 / sum);
            for (int64_t j = 0; j < n; ++j) yr[j] = store<T>(e[j] * inv);
          }
        }
      });
    }
  });
  if (!last) {
    std::vector<int64_t> inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);
    strided_copy(out, result.permute(inverse));
  }
}

constexpr std::initializer_list<DType> kFloat{DType::f32, DType::f64, DType::bf16, DType::f16};
constexpr std::initializer_list<DType> kNumeric{DType::f32, DType::f64, DType::bf16, DType::f16,
                                                DType::i32, DType::i64, DType::u8};

}  // namespace

void register_reduce_kernels(CpuBackend& backend) {
  backend.add_kernel(OpId::sum, reduce_kernel<Reduction::sum>, kNumeric);
  backend.add_kernel(OpId::mean, reduce_kernel<Reduction::mean>, kFloat);
  backend.add_kernel(OpId::max, reduce_kernel<Reduction::max>, kNumeric);
  backend.add_kernel(OpId::argmax, argmax_kernel, kNumeric);
  backend.add_kernel(OpId::softmax, softmax_kernel<false>, kFloat);
  backend.add_kernel(OpId::log_softmax, softmax_kernel<true>, kFloat);
}

}  // namespace gpuml::cpu
