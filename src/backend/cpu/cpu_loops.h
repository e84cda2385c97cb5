// Loop helpers shared by the cpu kernels: OpenMP partitioning, strided iteration over several
// operands at once, and the compute type of each storage type.
//
//   StridedLoop<2> loop = make_strided_loop<2>(out.shape(), {out.strides(), x_strides});
//   for_each_row(loop, [&](int64_t n, const Offsets<2>& off, const Offsets<2>& step) { ... });
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace gpuml::cpu {

// Below this many elements of work, waking threads costs more than it saves.
inline constexpr int64_t kParallelGrain = 16384;

// Splits [0, n) into one contiguous chunk per OpenMP thread; serial when `work` is small.
// The body must not throw (exceptions cannot leave an OpenMP region): validate before.
template <typename Body>
void parallel_for(int64_t n, int64_t work, Body&& body) {
  if (n <= 0) return;
  if (work < kParallelGrain || n == 1 || omp_get_max_threads() == 1 || omp_in_parallel()) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (n + threads - 1) / threads;
    int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    if (begin < end) body(begin, end);
  }
}

// The sum over [0, n) of `partial(begin, end)` over one fixed part per OpenMP thread, added in
// part order. An OpenMP `reduction(+)` adds the threads' partials in the order they finish,
// which with three or more threads changes the last bits from run to run. Here the parts depend
// only on n and the thread count, so serial and parallel runs give the same bits too.
template <typename Acc, typename Partial>
Acc ordered_sum(int64_t n, int64_t work, Partial&& partial) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(n, omp_get_max_threads()));
  std::vector<Acc> partials(static_cast<size_t>(parts), Acc{});
  parallel_for(parts, work, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k)
      partials[static_cast<size_t>(k)] = partial(k * n / parts, (k + 1) * n / parts);
  });
  Acc total{};
  for (const Acc& p : partials) total += p;
  return total;
}

// step(...step(init, f(0))..., f(n - 1)) for an associative step (a sum, a maximum), in 16 lanes,
// lane k taking the i with i % 16 == k, then folded pairwise: independent chains in vector
// registers, in a fixed order. A plain loop is one step after another at their latency, and
// GCC's omp simd reductions kept their lanes on the stack (a store and reload per vector).
// Always inlined, so the kernels' AVX2 and AVX-512 copies get it in their width.
inline constexpr int64_t kFoldLanes = 16;
template <typename S, typename F, typename Step>
[[gnu::always_inline]] inline S lane_fold(int64_t n, S init, F f, Step step) {
  S lanes[kFoldLanes];
  for (int64_t k = 0; k < kFoldLanes; ++k) lanes[k] = init;
  int64_t i = 0;
  for (; i + kFoldLanes <= n; i += kFoldLanes)
    for (int64_t k = 0; k < kFoldLanes; ++k) lanes[k] = step(lanes[k], f(i + k));
  for (; i < n; ++i) lanes[i % kFoldLanes] = step(lanes[i % kFoldLanes], f(i));
  for (int64_t w = kFoldLanes / 2; w >= 1; w /= 2)
    for (int64_t k = 0; k < w; ++k) lanes[k] = step(lanes[k], lanes[k + w]);
  return lanes[0];
}
// The sum of f(i) for i < n in S, by lane_fold.
template <typename S, typename F>
[[gnu::always_inline]] inline S lane_sum(int64_t n, F f) {
  return lane_fold<S>(n, S(0), f, [](S a, S b) { return a + b; });
}

// bf16/f16 are stored narrow and computed in float; every other type computes as itself.
template <typename T>
using Compute = std::conditional_t<std::is_same_v<T, bf16> || std::is_same_v<T, f16>, float, T>;
template <typename T>
inline Compute<T> load(T v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return v.to_float();
  else return v;
}
template <typename T>
inline T store(Compute<T> v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return T::from_float(v);
  else return v;
}

// double -> element exactly as ref stores it: floats round to nearest even, bool is `!= 0`,
// integers truncate toward zero then wrap to their width; NaN -> 0, +-inf -> the i64 extremes.
template <typename T>
inline T from_double_wrapping(double v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (v != v) return T{0};
    if (v >= 9.2233720368547758e18) return static_cast<T>(INT64_MAX);
    if (v <= -9.2233720368547758e18) return static_cast<T>(INT64_MIN);
    return static_cast<T>(static_cast<int64_t>(v));
  } else {
    return from_double<T>(v);
  }
}

template <size_t N>
using Offsets = std::array<int64_t, N>;

// N operands iterated in the row-major order of `shape`, with adjacent dims merged where every
// operand allows it (so a contiguous op is one long row and a bias add is rows of the bias).
template <size_t N>
struct StridedLoop {
  Shape shape;                     // merged dims, at least one
  std::array<Strides, N> strides;  // per operand, in elements, same rank as shape
};

template <size_t N>
StridedLoop<N> make_strided_loop(const Shape& shape, const std::array<Strides, N>& strides) {
  StridedLoop<N> loop;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !loop.shape.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = loop.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      loop.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) loop.strides[k].back() = strides[k][d];
    } else {
      loop.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) loop.strides[k].push_back(strides[k][d]);
    }
  }
  if (loop.shape.empty()) {
    loop.shape.push_back(numel(shape) == 0 ? 0 : 1);
    for (size_t k = 0; k < N; ++k) loop.strides[k].push_back(0);
  }
  return loop;
}

// Calls row(count, offsets, inner_steps) for runs along the innermost merged dim, the element
// range split across threads. Offsets/steps are in elements of each operand.
template <size_t N, typename Row>
void for_each_row(const StridedLoop<N>& loop, Row&& row) {
  const int nd = static_cast<int>(loop.shape.size());
  const int64_t inner = loop.shape[nd - 1];
  const int64_t total = numel(loop.shape);
  if (total == 0) return;
  Offsets<N> step;
  for (size_t k = 0; k < N; ++k) step[k] = loop.strides[k][nd - 1];
  parallel_for(total, total, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> index(nd, 0);
    Offsets<N> base{};
    int64_t rest = begin / inner;
    for (int d = nd - 2; d >= 0; --d) {
      index[d] = rest % loop.shape[d];
      rest /= loop.shape[d];
      for (size_t k = 0; k < N; ++k) base[k] += index[d] * loop.strides[k][d];
    }
    int64_t col = begin % inner, pos = begin;
    while (pos < end) {
      int64_t count = std::min(inner - col, end - pos);
      Offsets<N> off;
      for (size_t k = 0; k < N; ++k) off[k] = base[k] + col * step[k];
      row(count, off, step);
      pos += count;
      col = 0;
      for (int d = nd - 2; d >= 0; --d) {
        for (size_t k = 0; k < N; ++k) base[k] += loop.strides[k][d];
        if (++index[d] < loop.shape[d]) break;
        for (size_t k = 0; k < N; ++k) base[k] -= loop.strides[k][d] * loop.shape[d];
        index[d] = 0;
      }
    }
  });
}

// Pointer to element 0 of a tensor's view, typed.
template <typename T>
inline T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// Copies src into dst element by element (same shape and dtype, any strides): the one routine
// behind copy and every movement op.
void strided_copy(const Tensor& dst, const Tensor& src);
// Fills every element of a (possibly strided) view with `value` converted to its dtype.
void fill_value(const Tensor& dst, double value);
// A contiguous copy of t (t itself when already contiguous).
Tensor contiguous_copy(const Tensor& t);

}  // namespace gpuml::cpu
