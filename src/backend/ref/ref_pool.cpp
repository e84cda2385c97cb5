// Reference 2-d max and average pooling and their backward ops. All four share one sweep over
// the window taps, so forward and backward agree on which elements a window covers.
#include <cmath>
#include <limits>

#include "backend/ref/ref_kernels.h"

namespace gpuml::ref {

namespace {

// For every output element y[n, c, oh, ow] and every tap (kh, kw) of its window, in row-major
// tap order, whose input position
//   (oh * stride - pad + kh * dil, ow * stride - pad + kw * dil)
// lies inside x, calls visit(y_index, x_index) (flat row-major indices). Padded taps are skipped:
// for max pooling they are -inf and can never be a strict maximum; for average pooling they add
// 0 and only matter to the divisor (pool_divisors).
template <typename Visit>
void for_each_pool_tap(const Shape& x,  // (N, C, H, W)
                       const Shape& y,  // (N, C, OH, OW)
                       const Attrs& a, Visit&& visit) {
  const int64_t planes = x[0] * x[1], height = x[2], width = x[3];
  const int64_t out_h = y[2], out_w = y[3];
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t y_index = (plane * out_h + oh) * out_w + ow;
        for (int64_t kh = 0; kh < a.kernel[0]; ++kh) {
          const int64_t ih = oh * a.stride[0] - a.padding[0] + kh * a.dilation[0];
          if (ih < 0 || ih >= height) continue;
          for (int64_t kw = 0; kw < a.kernel[1]; ++kw) {
            const int64_t iw = ow * a.stride[1] - a.padding[1] + kw * a.dilation[1];
            if (iw < 0 || iw >= width) continue;
            visit(y_index, (plane * height + ih) * width + iw);
          }
        }
      }
}

// For each output element, the flat x index of the FIRST maximum of its window (row-major tap
// order; a NaN counts as the maximum), or -1 if no tap is in bounds.
std::vector<int64_t> max_pool_argmax(const std::vector<double>& x, const Shape& x_shape,
                                     const Shape& y_shape, const Attrs& a) {
  std::vector<int64_t> arg(static_cast<size_t>(numel(y_shape)), -1);
  for_each_pool_tap(x_shape, y_shape, a, [&](int64_t yi, int64_t xi) {
    int64_t& best = arg[yi];
    if (best < 0 || (std::isnan(x[xi]) && !std::isnan(x[best])) || x[xi] > x[best]) best = xi;
  });
  return arg;
}

// The average-pool divisor of each output element: kH * kW with count_include_pad, else the
// number of in-bounds taps.
std::vector<double> pool_divisors(const Shape& x_shape, const Shape& y_shape, const Attrs& a) {
  if (a.count_include_pad)
    return std::vector<double>(static_cast<size_t>(numel(y_shape)),
                               static_cast<double>(a.kernel[0] * a.kernel[1]));
  std::vector<double> count(static_cast<size_t>(numel(y_shape)), 0.0);
  for_each_pool_tap(x_shape, y_shape, a, [&](int64_t yi, int64_t) { count[yi] += 1.0; });
  return count;
}

// max_pool2d(x (N, C, H, W)) -> y (N, C, OH, OW)
void max_pool2d_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]);
  std::vector<int64_t> arg = max_pool_argmax(x, c.inputs[0].shape(), c.output.shape(), c.attrs);
  std::vector<double> y(arg.size());
  for (size_t i = 0; i < y.size(); ++i)
    y[i] = arg[i] < 0 ? -std::numeric_limits<double>::infinity() : x[arg[i]];
  store(c.output, y);
}

// max_pool2d_backward(x (N, C, H, W), dy (N, C, OH, OW)) -> dx (N, C, H, W): each dy goes to its
// window's first maximum; overlapping windows accumulate.
void max_pool2d_backward_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]), dy = load(c.inputs[1]);
  std::vector<int64_t> arg = max_pool_argmax(x, c.inputs[0].shape(), c.inputs[1].shape(), c.attrs);
  std::vector<double> dx(x.size(), 0.0);
  for (size_t i = 0; i < arg.size(); ++i)
    if (arg[i] >= 0) dx[arg[i]] += dy[i];
  store(c.output, dx);
}

// avg_pool2d(x (N, C, H, W)) -> y (N, C, OH, OW)
void avg_pool2d_kernel(const KernelCall& c) {
  const Shape& x_shape = c.inputs[0].shape();
  std::vector<double> x = load(c.inputs[0]);
  std::vector<double> y(static_cast<size_t>(c.output.numel()), 0.0);
  for_each_pool_tap(x_shape, c.output.shape(), c.attrs, [&](int64_t yi, int64_t xi) { y[yi] += x[xi]; });
  std::vector<double> divisor = pool_divisors(x_shape, c.output.shape(), c.attrs);
  for (size_t i = 0; i < y.size(); ++i) y[i] /= divisor[i];
  store(c.output, y);
}

// avg_pool2d_backward(dy (N, C, OH, OW)) -> dx of attrs.shape (N, C, H, W)
void avg_pool2d_backward_kernel(const KernelCall& c) {
  const Shape& x_shape = c.output.shape();
  std::vector<double> dy = load(c.inputs[0]);
  std::vector<double> divisor = pool_divisors(x_shape, c.inputs[0].shape(), c.attrs);
  std::vector<double> dx(static_cast<size_t>(c.output.numel()), 0.0);
  for_each_pool_tap(x_shape, c.inputs[0].shape(), c.attrs,
                    [&](int64_t yi, int64_t xi) { dx[xi] += dy[yi] / divisor[yi]; });
  store(c.output, dx);
}

}  // namespace

std::vector<KernelEntry> pool_kernels() {
  return {
      {OpId::max_pool2d, max_pool2d_kernel, kFloatDTypes},
      {OpId::avg_pool2d, avg_pool2d_kernel, kFloatDTypes},
      // The type rules do not restrict the dtypes of the backward ops; ref computes any of them.
      {OpId::max_pool2d_backward, max_pool2d_backward_kernel, kEveryDType},
      {OpId::avg_pool2d_backward, avg_pool2d_backward_kernel, kEveryDType},
  };
}

}  // namespace gpuml::ref
