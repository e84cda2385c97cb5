// conv2d (forward, backward data, backward filter), max/avg pooling on oneDNN with plain NCHW
// layouts; max_pool2d_backward as an OpenMP loop, because oneDNN's needs the forward workspace
// and our op gets x instead (first max in the window, row-major, gets the gradient).
#include <fmt/format.h>

#include <limits>
#include <type_traits>

#include "backend/cpu/cpu_activation.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;

// Blocked layouts (nChw16c...) let oneDNN use its direct jit kernels; the reorders to and from
// NCHW cost less than the gemm-based kernels that plain layouts get (measured on Fashion-MNIST
// shapes: 1.2x-1.8x faster for conv 32->64 forward and both backwards). Except the forward pass of
// a first layer with few input channels, where reordering the large output costs more (4x slower).
constexpr int64_t kFewChannels = 8;

// The geometry of one convolution: x (N, C, H, W), w (O, C/groups, kH, kW), y (N, O, OH, OW).
struct ConvGeometry {
  dnnl::memory::desc x_md, w_md, y_md;           // plain: NCHW, (G)OIHW
  dnnl::memory::desc x_any, w_any, y_any;        // layouts left for oneDNN to choose
  dims strides, dilation, padding;
  bool few_input_channels;
  std::string key;
};

ConvGeometry conv_geometry(DType dtype, const Shape& x, const Shape& w, const Shape& y, const Attrs& a) {
  auto dt = dnnl_type(dtype);
  ConvGeometry g;
  g.x_md = dnnl::memory::desc(dims(x.begin(), x.end()), dt, tag::nchw);
  if (a.groups > 1) {
    dims wd{a.groups, w[0] / a.groups, w[1], w[2], w[3]};
    g.w_md = dnnl::memory::desc(wd, dt, tag::goihw);
  } else {
    g.w_md = dnnl::memory::desc(dims(w.begin(), w.end()), dt, tag::oihw);
  }
  g.y_md = dnnl::memory::desc(dims(y.begin(), y.end()), dt, tag::nchw);
  g.x_any = dnnl::memory::desc(g.x_md.dims(), dt, tag::any);
  g.w_any = dnnl::memory::desc(g.w_md.dims(), dt, tag::any);
  g.y_any = dnnl::memory::desc(g.y_md.dims(), dt, tag::any);
  g.few_input_channels = w[1] < kFewChannels;
  g.strides = {a.stride[0], a.stride[1]};
  g.dilation = {a.dilation[0] - 1, a.dilation[1] - 1};  // oneDNN counts the gaps
  g.padding = {a.padding[0], a.padding[1]};
  g.key = fmt::format("{} x{} w{} y{} s{},{} d{},{} p{},{} g{}", dtype, shape_str(x), shape_str(w),
                      shape_str(y), a.stride[0], a.stride[1], a.dilation[0], a.dilation[1], a.padding[0],
                      a.padding[1], a.groups);
  return g;
}

dnnl::convolution_forward::primitive_desc conv_forward_pd(const ConvGeometry& g, const dnnl::engine& engine,
                                                          const dnnl::memory::desc& x_md,
                                                          const dnnl::memory::desc& y_md);

// The forward primitive desc used as the hint for the backward ones (all layouts chosen by oneDNN).
dnnl::convolution_forward::primitive_desc conv_forward_pd(const ConvGeometry& g, const dnnl::engine& engine) {
  return conv_forward_pd(g, engine, g.x_any, g.y_any);
}

dnnl::convolution_forward::primitive_desc conv_forward_pd(const ConvGeometry& g, const dnnl::engine& engine,
                                                          const dnnl::memory::desc& x_md,
                                                          const dnnl::memory::desc& y_md) {
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                       x_md, g.w_any, y_md, g.strides, g.dilation, g.padding, g.padding);
  return dnnl::convolution_forward::primitive_desc(desc, engine);
}

void conv2d_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &w = call.inputs[1], &y = call.output;
  if (y.numel() == 0) return;
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  ConvGeometry g = conv_geometry(y.dtype(), x.shape(), w.shape(), y.shape(), call.attrs);
  with_dnnl_errors("conv2d", [&] {
    dnnl::primitive p =
        ctx.primitive("conv_fwd " + g.key, [&] {
          if (g.few_input_channels) return dnnl::convolution_forward(conv_forward_pd(g, ctx.engine(), g.x_md, g.y_md));
          return dnnl::convolution_forward(conv_forward_pd(g, ctx.engine()));
        });
    ctx.execute_plain("conv_fwd " + g.key, p,
                      {{DNNL_ARG_SRC, g.x_md, x.raw_data(), false},
                       {DNNL_ARG_WEIGHTS, g.w_md, w.raw_data(), false},
                       {DNNL_ARG_DST, g.y_md, y.raw_data(), true}});
  });
}

// conv2d_bias_act: the convolution, then bias and activation in one in-place pass over y, one
// (n, o) plane per task. Not oneDNN's bias and eltwise post-ops: on the cnn preset's first layer
// (1 input channel, oneDNN 2.6's gemm convolution, Zen 4) they took 9.5 ms per call against
// 0.67 ms without them (ONEDNN_VERBOSE), far more than the separate add and relu cost.
// The activation is a template argument so that the inner loop has no branch and vectorises.
template <typename T, Activation Act>
void bias_act_planes(const Tensor& y, const Tensor& bias, bool gelu_tanh) {
  const int64_t channels = y.shape()[1], plane = y.shape()[2] * y.shape()[3];
  T* data = y.data<T>();
  const T* b = bias.data<T>();
  parallel_for(y.shape()[0] * channels, y.numel(), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const Compute<T> add = load(b[p % channels]);
      T* row = data + p * plane;
#pragma omp simd
      for (int64_t i = 0; i < plane; ++i) row[i] = store<T>(activation_fn(Act, gelu_tanh, load(row[i]) + add));
    }
  });
}

template <typename T>
void bias_act_planes(const Tensor& y, const Tensor& bias, Activation act, bool gelu_tanh) {
  switch (act) {
    case Activation::none: return bias_act_planes<T, Activation::none>(y, bias, gelu_tanh);
    case Activation::relu: return bias_act_planes<T, Activation::relu>(y, bias, gelu_tanh);
    case Activation::gelu: return bias_act_planes<T, Activation::gelu>(y, bias, gelu_tanh);
  }
}

void conv2d_bias_act_kernel(const KernelCall& call) {
  conv2d_kernel(call);
  const Tensor& y = call.output;
  if (y.dtype() == DType::bf16)
    bias_act_planes<bf16>(y, call.inputs[2], call.attrs.activation, call.attrs.gelu_tanh);
  else
    bias_act_planes<float>(y, call.inputs[2], call.attrs.activation, call.attrs.gelu_tanh);
}

void conv2d_backward_data_kernel(const KernelCall& call) {  // (dy, w) -> dx
  const Tensor &dy = call.inputs[0], &w = call.inputs[1], &dx = call.output;
  if (dx.numel() == 0) return;
  if (dy.numel() == 0) return fill_value(dx, 0.0);
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  ConvGeometry g = conv_geometry(dx.dtype(), dx.shape(), w.shape(), dy.shape(), call.attrs);
  with_dnnl_errors("conv2d_backward_data", [&] {
    dnnl::primitive p = ctx.primitive("conv_bwd_data " + g.key, [&] {
      dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, g.x_any, g.w_any, g.y_any,
                                                 g.strides, g.dilation, g.padding, g.padding);
      return dnnl::convolution_backward_data(
          dnnl::convolution_backward_data::primitive_desc(desc, ctx.engine(), conv_forward_pd(g, ctx.engine())));
    });
    ctx.execute_plain("conv_bwd_data " + g.key, p,
                      {{DNNL_ARG_DIFF_DST, g.y_md, dy.raw_data(), false},
                       {DNNL_ARG_WEIGHTS, g.w_md, w.raw_data(), false},
                       {DNNL_ARG_DIFF_SRC, g.x_md, dx.raw_data(), true}});
  });
}

void conv2d_backward_filter_kernel(const KernelCall& call) {  // (x, dy) -> dw
  const Tensor &x = call.inputs[0], &dy = call.inputs[1], &dw = call.output;
  if (dw.numel() == 0) return;
  if (x.numel() == 0 || dy.numel() == 0) return fill_value(dw, 0.0);
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  ConvGeometry g = conv_geometry(dw.dtype(), x.shape(), dw.shape(), dy.shape(), call.attrs);
  with_dnnl_errors("conv2d_backward_filter", [&] {
    dnnl::primitive p = ctx.primitive("conv_bwd_filter " + g.key, [&] {
      dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, g.x_any, g.w_any, g.y_any,
                                                    g.strides, g.dilation, g.padding, g.padding);
      return dnnl::convolution_backward_weights(dnnl::convolution_backward_weights::primitive_desc(
          desc, ctx.engine(), conv_forward_pd(g, ctx.engine())));
    });
    ctx.execute_plain("conv_bwd_filter " + g.key, p,
                      {{DNNL_ARG_SRC, g.x_md, x.raw_data(), false},
                       {DNNL_ARG_DIFF_DST, g.y_md, dy.raw_data(), false},
                       {DNNL_ARG_DIFF_WEIGHTS, g.w_md, dw.raw_data(), true}});
  });
}

// Pooling geometry: x (N, C, H, W), y (N, C, OH, OW).
struct PoolGeometry {
  dnnl::memory::desc x_md, y_md;
  dims strides, kernel, dilation, padding;
  dnnl::algorithm algorithm;
  std::string key;
};

PoolGeometry pool_geometry(OpId op, DType dtype, const Shape& x, const Shape& y, const Attrs& a) {
  auto dt = dnnl_type(dtype);
  PoolGeometry g;
  g.x_md = dnnl::memory::desc(dims(x.begin(), x.end()), dt, tag::nchw);
  g.y_md = dnnl::memory::desc(dims(y.begin(), y.end()), dt, tag::nchw);
  g.strides = {a.stride[0], a.stride[1]};
  g.kernel = {a.kernel[0], a.kernel[1]};
  g.dilation = {a.dilation[0] - 1, a.dilation[1] - 1};
  g.padding = {a.padding[0], a.padding[1]};
  if (op == OpId::max_pool2d) g.algorithm = dnnl::algorithm::pooling_max;
  else if (a.count_include_pad) g.algorithm = dnnl::algorithm::pooling_avg_include_padding;
  else g.algorithm = dnnl::algorithm::pooling_avg_exclude_padding;
  g.key = fmt::format("{} {} x{} y{} k{},{} s{},{} d{},{} p{},{}", static_cast<int>(g.algorithm), dtype,
                      shape_str(x), shape_str(y), a.kernel[0], a.kernel[1], a.stride[0], a.stride[1],
                      a.dilation[0], a.dilation[1], a.padding[0], a.padding[1]);
  return g;
}

dnnl::pooling_v2_forward::primitive_desc pool_forward_pd(const PoolGeometry& g, dnnl::prop_kind prop,
                                                         const dnnl::engine& engine) {
  dnnl::pooling_v2_forward::desc desc(prop, g.algorithm, g.x_md, g.y_md, g.strides, g.kernel, g.dilation,
                                      g.padding, g.padding);
  return dnnl::pooling_v2_forward::primitive_desc(desc, engine);
}

template <OpId Op>
void pool_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &y = call.output;
  if (y.numel() == 0) return;
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  PoolGeometry g = pool_geometry(Op, y.dtype(), x.shape(), y.shape(), call.attrs);
  with_dnnl_errors(op_name(Op).data(), [&] {
    dnnl::primitive p = ctx.primitive("pool_fwd " + g.key, [&] {
      return dnnl::pooling_v2_forward(pool_forward_pd(g, dnnl::prop_kind::forward_inference, ctx.engine()));
    });
    ctx.execute(p, {{DNNL_ARG_SRC, ctx.memory(g.x_md, x.raw_data())},
                    {DNNL_ARG_DST, ctx.memory(g.y_md, y.raw_data())}});
  });
}

void avg_pool2d_backward_kernel(const KernelCall& call) {  // (dy) -> dx
  const Tensor &dy = call.inputs[0], &dx = call.output;
  if (dx.numel() == 0) return;
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  PoolGeometry g = pool_geometry(OpId::avg_pool2d, dx.dtype(), dx.shape(), dy.shape(), call.attrs);
  with_dnnl_errors("avg_pool2d_backward", [&] {
    dnnl::primitive p = ctx.primitive("pool_bwd " + g.key, [&] {
      dnnl::pooling_v2_backward::desc desc(g.algorithm, g.x_md, g.y_md, g.strides, g.kernel, g.dilation, g.padding,
                                           g.padding);
      return dnnl::pooling_v2_backward(dnnl::pooling_v2_backward::primitive_desc(
          desc, ctx.engine(), pool_forward_pd(g, dnnl::prop_kind::forward_training, ctx.engine())));
    });
    ctx.execute(p, {{DNNL_ARG_DIFF_DST, ctx.memory(g.y_md, dy.raw_data())},
                    {DNNL_ARG_DIFF_SRC, ctx.memory(g.x_md, dx.raw_data())}});
  });
}

// Window taps [first, last) along one dim that land inside [0, size) for output position `o`.
struct TapRange {
  int64_t first, last;
};
inline TapRange taps_inside(int64_t o, int64_t size, int64_t kernel, int64_t stride, int64_t pad, int64_t dil) {
  int64_t origin = o * stride - pad;
  int64_t first = origin >= 0 ? 0 : (-origin + dil - 1) / dil;
  int64_t last = size - origin <= 0 ? 0 : std::min(kernel, (size - origin + dil - 1) / dil);
  return {first, std::max(first, last)};
}

// Whether v beats the running maximum `best` of a window: strictly greater (so the first of equal
// maxima wins), or the first NaN, which counts as the maximum (as ref).
inline bool beats(float v, float best) { return v > best || (v != v && best == best); }

// Each (n, c) plane is independent: planes in parallel, windows scanned row-major so that the
// first maximal element wins, as in ref. Disjoint windows (stride >= span, the usual 2x2/2) write
// dx directly; overlapping ones accumulate in a float plane first.
template <typename T>
void max_pool2d_backward_planes(const Tensor& x, const Tensor& dy, const Tensor& dx, const Attrs& a) {
  const int64_t planes = x.shape()[0] * x.shape()[1];
  const int64_t h = x.shape()[2], w = x.shape()[3], oh = dy.shape()[2], ow = dy.shape()[3];
  const bool disjoint = a.stride[0] >= (a.kernel[0] - 1) * a.dilation[0] + 1 &&
                        a.stride[1] >= (a.kernel[1] - 1) * a.dilation[1] + 1;
  std::vector<TapRange> rows(static_cast<size_t>(oh)), cols(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) rows[i] = taps_inside(i, h, a.kernel[0], a.stride[0], a.padding[0], a.dilation[0]);
  for (int64_t j = 0; j < ow; ++j) cols[j] = taps_inside(j, w, a.kernel[1], a.stride[1], a.padding[1], a.dilation[1]);
  const T* px = ptr<const T>(x);
  const T* pdy = ptr<const T>(dy);
  T* pdx = ptr<T>(dx);
  parallel_for(planes, planes * (h * w + oh * ow * a.kernel[0] * a.kernel[1]), [&](int64_t begin, int64_t end) {
    std::vector<float> acc(disjoint ? 0 : static_cast<size_t>(h * w));
    // Exact: ref's rule with NaN as the maximum; only planes holding a NaN need it, and the
    // plain `v > best` select is much faster (the `||` of the exact rule becomes branches).
    auto scan_windows = [&](auto exact, const T* xp, const T* dyp, T* dxp) {
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t r0 = i * a.stride[0] - a.padding[0];
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t c0 = j * a.stride[1] - a.padding[1];
          if (rows[i].first >= rows[i].last || cols[j].first >= cols[j].last) continue;
          // Seeded with the first tap; strict > keeps the first of equal maxima. Written as
          // selects (no branch) because on random data the comparison is unpredictable.
          int64_t best_at = (r0 + rows[i].first * a.dilation[0]) * w + c0 + cols[j].first * a.dilation[1];
          float best = static_cast<float>(load(xp[best_at]));
          for (int64_t ki = rows[i].first; ki < rows[i].last; ++ki) {
            const int64_t rbase = (r0 + ki * a.dilation[0]) * w + c0;
            for (int64_t kj = cols[j].first; kj < cols[j].last; ++kj) {
              const int64_t at = rbase + kj * a.dilation[1];
              const float v = static_cast<float>(load(xp[at]));
              bool better;
              if constexpr (decltype(exact)::value) better = beats(v, best);
              else better = v > best;
              best = better ? v : best;
              best_at = better ? at : best_at;
            }
          }
          if (disjoint) dxp[best_at] = dyp[i * ow + j];
          else acc[best_at] += static_cast<float>(load(dyp[i * ow + j]));
        }
      }
    };
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = px + plane * h * w;
      const T* dyp = pdy + plane * oh * ow;
      T* dxp = pdx + plane * h * w;
      if (disjoint) std::fill(dxp, dxp + h * w, store<T>(Compute<T>(0)));
      else std::fill(acc.begin(), acc.end(), 0.0f);
      float poison = 0.0f;  // NaN iff the plane holds a NaN or an inf
#pragma omp simd reduction(+ : poison)
      for (int64_t k = 0; k < h * w; ++k) poison += static_cast<float>(load(xp[k])) * 0.0f;
      if (poison == 0.0f) scan_windows(std::false_type{}, xp, dyp, dxp);
      else scan_windows(std::true_type{}, xp, dyp, dxp);
      if (!disjoint)
        for (int64_t k = 0; k < h * w; ++k) dxp[k] = store<T>(static_cast<Compute<T>>(acc[k]));
    }
  });
}

// One output row of the 2x2 stride-2 case: the windows of x rows x0, x1 route g to d0, d1.
// Written as float selects that GCC turns into vector blends (plain `if`s became unpredictable
// branches, 2.5x slower than the generic loop). Exact for rows without NaN (strict > keeps the
// first of equal maxima); returns false when a NaN (or inf) was seen so the caller can redo the
// row with the exact scalar scan.
bool max_pool2d_backward_2x2_row(const float* x0, const float* x1,  // (W,) each
                                 const float* g,                    // (OW,)
                                 float* d0, float* d1,              // (W,) each
                                 int64_t ow) {
  float poison = 0.0f;  // becomes NaN if any tap is NaN or inf
#pragma omp simd reduction(+ : poison)
  for (int64_t j = 0; j < ow; ++j) {
    const float a = x0[2 * j], b = x0[2 * j + 1], c = x1[2 * j], d = x1[2 * j + 1];
    const float gj = g[j];
    poison += (a + b + c + d) * 0.0f;
    const bool take_b = b > a;
    const float best_ab = take_b ? b : a;
    const bool take_c = c > best_ab;
    const float best_abc = take_c ? c : best_ab;
    const bool take_d = d > best_abc;
    // Peel the winner off from the last tap back, so each store is one select.
    d1[2 * j + 1] = take_d ? gj : 0.0f;
    const float left_abc = take_d ? 0.0f : gj;
    d1[2 * j] = take_c ? left_abc : 0.0f;
    const float left_ab = take_c ? 0.0f : left_abc;
    d0[2 * j + 1] = take_b ? left_ab : 0.0f;
    d0[2 * j] = take_b ? 0.0f : left_ab;
  }
  return poison == 0.0f;
}

// The same row with ref's exact rule, a NaN counting as the maximum (the first NaN wins).
void max_pool2d_backward_2x2_row_exact(const float* x0, const float* x1, const float* g, float* d0, float* d1,
                                       int64_t ow) {
  for (int64_t j = 0; j < ow; ++j) {
    const float taps[4] = {x0[2 * j], x0[2 * j + 1], x1[2 * j], x1[2 * j + 1]};
    int at = 0;
    for (int t = 1; t < 4; ++t)
      if (beats(taps[t], taps[at])) at = t;
    d0[2 * j] = at == 0 ? g[j] : 0.0f;
    d0[2 * j + 1] = at == 1 ? g[j] : 0.0f;
    d1[2 * j] = at == 2 ? g[j] : 0.0f;
    d1[2 * j + 1] = at == 3 ? g[j] : 0.0f;
  }
}

// The usual 2x2 window, stride 2, no padding or dilation, f32: windows tile x, so each dx element
// is written exactly once (no fill, no accumulation). Rows and columns past 2*OH / 2*OW belong to
// no window and get 0.
void max_pool2d_backward_2x2(const Tensor& x, const Tensor& dy, const Tensor& dx) {
  const int64_t planes = x.shape()[0] * x.shape()[1];
  const int64_t h = x.shape()[2], w = x.shape()[3], oh = dy.shape()[2], ow = dy.shape()[3];
  const float* px = ptr<const float>(x);    // (N, C, H, W)
  const float* pdy = ptr<const float>(dy);  // (N, C, OH, OW)
  float* pdx = ptr<float>(dx);              // (N, C, H, W)
  parallel_for(planes, planes * h * w, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const float* xp = px + plane * h * w;
      const float* dyp = pdy + plane * oh * ow;
      float* dxp = pdx + plane * h * w;
      for (int64_t i = 0; i < oh; ++i) {
        const float* x0 = xp + 2 * i * w;
        float* d0 = dxp + 2 * i * w;
        if (!max_pool2d_backward_2x2_row(x0, x0 + w, dyp + i * ow, d0, d0 + w, ow))
          max_pool2d_backward_2x2_row_exact(x0, x0 + w, dyp + i * ow, d0, d0 + w, ow);
        for (int64_t k = 2 * ow; k < w; ++k) d0[k] = d0[w + k] = 0.0f;
      }
      std::fill(dxp + 2 * oh * w, dxp + h * w, 0.0f);
    }
  });
}

bool is_plain_2x2_stride_2(const Attrs& a) {
  return a.kernel[0] == 2 && a.kernel[1] == 2 && a.stride[0] == 2 && a.stride[1] == 2 && a.padding[0] == 0 &&
         a.padding[1] == 0 && a.dilation[0] == 1 && a.dilation[1] == 1;
}

void max_pool2d_backward_kernel(const KernelCall& call) {  // (x, dy) -> dx
  if (call.output.numel() == 0) return;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bf16>) {
      // Rows shorter than a few vectors spend their time in the scalar remainder, where the
      // generic loop is faster (14x14 -> 7x7: 2.6 ms vs 2.1 ms; 28x28 -> 14x14: 2.3 vs 4.1 ms).
      constexpr int64_t kMinVectorRow = 12;
      if (std::is_same_v<T, float> && is_plain_2x2_stride_2(call.attrs) &&
          call.inputs[1].shape()[3] >= kMinVectorRow)
        max_pool2d_backward_2x2(call.inputs[0], call.inputs[1], call.output);
      else
        max_pool2d_backward_planes<T>(call.inputs[0], call.inputs[1], call.output, call.attrs);
    }
    else GPUML_FAIL(ErrorKind::Internal, "max_pool2d_backward: no cpu kernel for {}", call.output.dtype());
  });
}

}  // namespace

void register_conv_pool_kernels(CpuBackend& backend) {
  std::initializer_list<DType> f32_only{DType::f32}, with_bf16{DType::f32, DType::bf16};
  auto dtypes = backend.dnnl().supports_bf16() ? with_bf16 : f32_only;
  backend.add_kernel(OpId::conv2d, conv2d_kernel, dtypes, false);
  backend.add_kernel(OpId::conv2d_bias_act, conv2d_bias_act_kernel, dtypes, false);
  backend.add_kernel(OpId::conv2d_backward_data, conv2d_backward_data_kernel, dtypes, false);
  backend.add_kernel(OpId::conv2d_backward_filter, conv2d_backward_filter_kernel, dtypes, false);
  backend.add_kernel(OpId::max_pool2d, pool_kernel<OpId::max_pool2d>, dtypes, false);
  backend.add_kernel(OpId::avg_pool2d, pool_kernel<OpId::avg_pool2d>, dtypes, false);
  backend.add_kernel(OpId::avg_pool2d_backward, avg_pool2d_backward_kernel, dtypes, false);
  backend.add_kernel(OpId::max_pool2d_backward, max_pool2d_backward_kernel, dtypes, false);
}

}  // namespace gpuml::cpu
