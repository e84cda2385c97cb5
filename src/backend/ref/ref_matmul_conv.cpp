// Reference matmul (batched, broadcast batch dims, transposes) and 2-d convolution with its two
// backward ops. The three convolution ops share one loop nest over (input, weight, output)
// triples, so forward and backward cannot disagree about which elements meet.
#include "backend/ref/ref_kernels.h"
#include "ops/type_rules.h"

namespace gpuml::ref {

namespace {

// matmul: a (..., M, K) [(..., K, M) if trans_a], b (..., K, N) [(..., N, K) if trans_b].
// Returns the (B, M, N) products.
std::vector<double> matmul_values(const KernelCall& c) {
  const Attrs& attrs = c.attrs;
  MatmulDims dims = matmul_dims(c.inputs[0].shape(), c.inputs[1].shape(), attrs);
  Tensor a = attrs.trans_a ? c.inputs[0].transpose(-1, -2) : c.inputs[0];  // (..., M, K) view
  Tensor b = attrs.trans_b ? c.inputs[1].transpose(-1, -2) : c.inputs[1];  // (..., K, N) view
  Shape a_shape = dims.batch, b_shape = dims.batch;
  a_shape.insert(a_shape.end(), {dims.m, dims.k});
  b_shape.insert(b_shape.end(), {dims.k, dims.n});
  std::vector<double> av = load_broadcast(a, a_shape);  // (B, M, K)
  std::vector<double> bv = load_broadcast(b, b_shape);  // (B, K, N)
  const int64_t batches = numel(dims.batch), m = dims.m, k = dims.k, n = dims.n;
  std::vector<double> out(static_cast<size_t>(batches * m * n));  // (B, M, N)
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0.0;
        for (int64_t p = 0; p < k; ++p) acc += av[(bi * m + i) * k + p] * bv[(bi * k + p) * n + j];
        out[(bi * m + i) * n + j] = acc;
      }
  return out;
}

void matmul_kernel(const KernelCall& c) { store(c.output, matmul_values(c)); }

// matmul_bias_act(a, b, bias (N,)): activation(a @ b + bias), rounded once into the output.
void matmul_bias_act_kernel(const KernelCall& c) {
  std::vector<double> out = matmul_values(c);
  std::vector<double> bias = load(c.inputs[2]);
  const size_t n = bias.size();
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = activation_fn(c.attrs.activation, c.attrs.gelu_tanh, out[i] + bias[i % n]);
  store(c.output, out);
}

// matmul_dact(a, b, aux): act'(aux) * (a @ b), rounded once into the output.
void matmul_dact_kernel(const KernelCall& c) {
  std::vector<double> out = matmul_values(c);
  std::vector<double> aux = load(c.inputs[2]);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = activation_backward_fn(c.attrs.activation, c.attrs.gelu_tanh, aux[i], out[i]);
  store(c.output, out);
}

// matmul_bgrad(a, b): the 2-d product (output 0) and the sums over rows of the operand `axis`
// names (a (k, m) with trans_a, or b (k, n)) (output 1): a weight gradient and its bias gradient.
void matmul_bgrad_kernel(const KernelCall& c) {
  store(c.output, matmul_values(c));
  const Tensor& g = c.inputs[c.attrs.axis];
  std::vector<double> gv = load(g);
  const int64_t rows = g.dim(0), cols = g.dim(1);
  std::vector<double> sums(static_cast<size_t>(cols), 0.0);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) sums[static_cast<size_t>(j)] += gv[static_cast<size_t>(i * cols + j)];
  store(c.extra_outputs[0], sums);
}

// Cross-correlation as PyTorch: y[n, o, oh, ow] = sum over (cg, kh, kw) of
//   x[n, g * C/groups + cg, oh * stride - pad + kh * dil, ow * stride - pad + kw * dil] * w[o, cg, kh, kw]
// with g = o / (O / groups) and out-of-bounds x taken as 0 (skipped).
// Calls visit(x_index, w_index, y_index) for every in-bounds product, indices flat row-major.
template <typename Visit>
void for_each_conv_product(const Shape& x,  // (N, C, H, W)
                           const Shape& w,  // (O, C/groups, kH, kW)
                           const Shape& y,  // (N, O, OH, OW)
                           const Attrs& a, Visit&& visit) {
  const int64_t batch = x[0], channels = x[1], height = x[2], width = x[3];
  const int64_t filters = w[0], group_channels = w[1], kh_size = w[2], kw_size = w[3];
  const int64_t out_h = y[2], out_w = y[3];
  const int64_t filters_per_group = filters / a.groups;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < filters; ++o) {
      const int64_t group = o / filters_per_group;
      for (int64_t oh = 0; oh < out_h; ++oh)
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t y_index = ((n * filters + o) * out_h + oh) * out_w + ow;
          for (int64_t cg = 0; cg < group_channels; ++cg) {
            const int64_t ch = group * group_channels + cg;
            for (int64_t kh = 0; kh < kh_size; ++kh) {
              const int64_t ih = oh * a.stride[0] - a.padding[0] + kh * a.dilation[0];
              if (ih < 0 || ih >= height) continue;
              for (int64_t kw = 0; kw < kw_size; ++kw) {
                const int64_t iw = ow * a.stride[1] - a.padding[1] + kw * a.dilation[1];
                if (iw < 0 || iw >= width) continue;
                const int64_t x_index = ((n * channels + ch) * height + ih) * width + iw;
                const int64_t w_index = ((o * group_channels + cg) * kh_size + kh) * kw_size + kw;
                visit(x_index, w_index, y_index);
              }
            }
          }
        }
    }
}

// conv2d(x (N, C, H, W), w (O, C/groups, kH, kW)) -> y (N, O, OH, OW)
std::vector<double> conv2d_values(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]), w = load(c.inputs[1]);
  std::vector<double> y(static_cast<size_t>(c.output.numel()), 0.0);
  for_each_conv_product(c.inputs[0].shape(), c.inputs[1].shape(), c.output.shape(), c.attrs,
                        [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += x[xi] * w[wi]; });
  return y;
}

void conv2d_kernel(const KernelCall& c) { store(c.output, conv2d_values(c)); }

// conv2d_bias_act(x, w, bias (O,)): activation(conv2d(x, w) + bias[o]), rounded once.
void conv2d_bias_act_kernel(const KernelCall& c) {
  std::vector<double> y = conv2d_values(c);
  std::vector<double> bias = load(c.inputs[2]);
  const Shape& s = c.output.shape();
  const int64_t plane = s[2] * s[3], channels = s[1];
  for (size_t i = 0; i < y.size(); ++i)
    y[i] = activation_fn(c.attrs.activation, c.attrs.gelu_tanh, y[i] + bias[(static_cast<int64_t>(i) / plane) % channels]);
  store(c.output, y);
}

// conv2d_backward_data(dy (N, O, OH, OW), w) -> dx of attrs.shape (N, C, H, W)
void conv2d_backward_data_kernel(const KernelCall& c) {
  std::vector<double> dy = load(c.inputs[0]), w = load(c.inputs[1]);
  std::vector<double> dx(static_cast<size_t>(c.output.numel()), 0.0);
  for_each_conv_product(c.output.shape(), c.inputs[1].shape(), c.inputs[0].shape(), c.attrs,
                        [&](int64_t xi, int64_t wi, int64_t yi) { dx[xi] += dy[yi] * w[wi]; });
  store(c.output, dx);
}

// conv2d_backward_filter(x (N, C, H, W), dy (N, O, OH, OW)) -> dw of attrs.shape (O, C/groups, kH, kW)
void conv2d_backward_filter_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]), dy = load(c.inputs[1]);
  std::vector<double> dw(static_cast<size_t>(c.output.numel()), 0.0);
  for_each_conv_product(c.inputs[0].shape(), c.output.shape(), c.inputs[1].shape(), c.attrs,
                        [&](int64_t xi, int64_t wi, int64_t yi) { dw[wi] += x[xi] * dy[yi]; });
  store(c.output, dw);
}

}  // namespace

std::vector<KernelEntry> matmul_conv_kernels() {
  return {
      {OpId::matmul, matmul_kernel, kFloatDTypes},
      {OpId::matmul_bias_act, matmul_bias_act_kernel, kFloatDTypes},
      {OpId::matmul_bgrad, matmul_bgrad_kernel, kFloatDTypes},
      {OpId::matmul_dact, matmul_dact_kernel, kFloatDTypes},
      {OpId::conv2d, conv2d_kernel, kFloatDTypes},
      {OpId::conv2d_bias_act, conv2d_bias_act_kernel, kFloatDTypes},
      // The type rules do not restrict the dtypes of the backward ops; ref computes any of them.
      {OpId::conv2d_backward_data, conv2d_backward_data_kernel, kEveryDType},
      {OpId::conv2d_backward_filter, conv2d_backward_filter_kernel, kEveryDType},
  };
}

}  // namespace gpuml::ref
