// Reference reductions (sum, mean, max, argmax) and softmax / log_softmax along an axis.
#include <cmath>
#include <limits>

#include "backend/ref/ref_kernels.h"
#include "ops/type_rules.h"

namespace gpuml::ref {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Strides that map an input index to the flat index of its (contiguous) reduction output:
// the output's strides on kept dims, 0 on reduced dims. keepdim does not change the layout.
Strides reduction_output_strides(const Shape& in, const std::vector<bool>& reduced) {
  Shape kept = in;
  for (size_t d = 0; d < in.size(); ++d)
    if (reduced[d]) kept[d] = 1;
  Strides strides = contiguous_strides(kept);
  for (size_t d = 0; d < in.size(); ++d)
    if (reduced[d]) strides[d] = 0;
  return strides;
}

int64_t reduced_count(const Shape& in, const std::vector<bool>& reduced) {
  int64_t n = 1;
  for (size_t d = 0; d < in.size(); ++d)
    if (reduced[d]) n *= in[d];
  return n;
}

enum class Reduction { sum, mean, max };

template <Reduction R>
void reduce_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];
  std::vector<bool> reduced = reduced_axes(c.attrs, x.ndim(), "reduce");
  std::vector<double> values = load(x);
  // sum over nothing is 0; max always reduces non-empty axes (the type rule says so).
  std::vector<double> acc(static_cast<size_t>(c.output.numel()), R == Reduction::max ? -kInf : 0.0);
  for_each_offset(x.shape(), {contiguous_strides(x.shape()), reduction_output_strides(x.shape(), reduced)},
                  [&](int64_t, std::span<const int64_t> off) {
                    double v = values[off[0]];
                    double& a = acc[off[1]];
                    if constexpr (R == Reduction::max) {
                      if (std::isnan(v) || v > a) a = v;  // NaN propagates: once NaN, nothing is >
                    } else {
                      a += v;
                    }
                  });
  if constexpr (R == Reduction::mean) {
    // The mean of nothing is 0 / 0 = NaN.
    double count = static_cast<double>(reduced_count(x.shape(), reduced));
    for (double& a : acc) a /= count;
  }
  store(c.output, acc);
}

// argmax along attrs.axis: the FIRST index of the maximum (a NaN counts as the maximum).
void argmax_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];
  int axis = normalize_axis(c.attrs.axis, x.ndim(), "argmax");
  std::vector<bool> reduced(x.ndim(), false);
  reduced[axis] = true;
  Strides index_along_axis(x.ndim(), 0);  // offset = the index along `axis`
  index_along_axis[axis] = 1;
  std::vector<double> values = load(x);
  size_t n_out = static_cast<size_t>(c.output.numel());
  std::vector<double> best(n_out, -kInf), best_index(n_out, -1.0);
  // Row-major order visits each output's candidates in increasing index, so a strict `>`
  // keeps the first of equal maxima.
  for_each_offset(x.shape(),
                  {contiguous_strides(x.shape()), reduction_output_strides(x.shape(), reduced),
                   index_along_axis},
                  [&](int64_t, std::span<const int64_t> off) {
                    double v = values[off[0]];
                    size_t o = static_cast<size_t>(off[1]);
                    bool better = best_index[o] < 0 || (std::isnan(v) && !std::isnan(best[o])) ||
                                  v > best[o];
                    if (better) {
                      best[o] = v;
                      best_index[o] = static_cast<double>(off[2]);
                    }
                  });
  store(c.output, best_index);
}

// softmax / log_softmax along attrs.axis, stable: exp(x - max) / sum(exp(x - max)).
template <bool Log>
void softmax_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];
  const Shape& shape = x.shape();
  int axis = normalize_axis(c.attrs.axis, x.ndim(), "softmax");
  int64_t outer = dims_product(shape, 0, axis), n = shape[axis];
  int64_t inner = dims_product(shape, axis + 1, x.ndim());
  std::vector<double> v = load(x);  // (outer, n, inner)
  std::vector<double> out(v.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return static_cast<size_t>((o * n + j) * inner + in); };
      double m = -kInf;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, v[at(j)]);
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) sum += std::exp(v[at(j)] - m);
      for (int64_t j = 0; j < n; ++j)
        out[at(j)] = Log ? v[at(j)] - m - std::log(sum) : std::exp(v[at(j)] - m) / sum;
    }
  }
  store(c.output, out);
}

}  // namespace

std::vector<KernelEntry> reduce_kernels() {
  return {
      {OpId::sum, reduce_kernel<Reduction::sum>, kNumericDTypes},
      {OpId::mean, reduce_kernel<Reduction::mean>, kFloatDTypes},
      {OpId::max, reduce_kernel<Reduction::max>, kNumericDTypes},
      {OpId::argmax, argmax_kernel, kNumericDTypes},
      {OpId::softmax, softmax_kernel<false>, kFloatDTypes},
      {OpId::log_softmax, softmax_kernel<true>, kFloatDTypes},
  };
}

}  // namespace gpuml::ref
