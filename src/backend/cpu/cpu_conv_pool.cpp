// conv2d (forward, backward data, backward filter), max/avg pooling on oneDNN with plain NCHW
// layouts; max_pool2d_backward as an OpenMP loop, because oneDNN's needs the forward workspace
// and our op gets x instead (first max in the window, row-major, gets the gradient).
#include <fmt/format.h>

#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;

// The geometry of one convolution: x (N, C, H, W), w (O, C/groups, kH, kW), y (N, O, OH, OW).
struct ConvGeometry {
  dnnl::memory::desc x_md, w_md, y_md;
  dims strides, dilation, padding;
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
  g.strides = {a.stride[0], a.stride[1]};
  g.dilation = {a.dilation[0] - 1, a.dilation[1] - 1};  // oneDNN counts the gaps
  g.padding = {a.padding[0], a.padding[1]};
  g.key = fmt::format("{} x{} w{} y{} s{},{} d{},{} p{},{} g{}", dtype, shape_str(x), shape_str(w),
                      shape_str(y), a.stride[0], a.stride[1], a.dilation[0], a.dilation[1], a.padding[0],
                      a.padding[1], a.groups);
  return g;
}

dnnl::convolution_forward::primitive_desc conv_forward_pd(const ConvGeometry& g, const dnnl::engine& engine) {
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                       g.x_md, g.w_md, g.y_md, g.strides, g.dilation, g.padding, g.padding);
  return dnnl::convolution_forward::primitive_desc(desc, engine);
}

void conv2d_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &w = call.inputs[1], &y = call.output;
  if (y.numel() == 0) return;
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  ConvGeometry g = conv_geometry(y.dtype(), x.shape(), w.shape(), y.shape(), call.attrs);
  with_dnnl_errors("conv2d", [&] {
    dnnl::primitive p =
        ctx.primitive("conv_fwd " + g.key, [&] { return dnnl::convolution_forward(conv_forward_pd(g, ctx.engine())); });
    ctx.execute(p, {{DNNL_ARG_SRC, ctx.memory(g.x_md, x.raw_data())},
                    {DNNL_ARG_WEIGHTS, ctx.memory(g.w_md, w.raw_data())},
                    {DNNL_ARG_DST, ctx.memory(g.y_md, y.raw_data())}});
  });
}

void conv2d_backward_data_kernel(const KernelCall& call) {  // (dy, w) -> dx
  const Tensor &dy = call.inputs[0], &w = call.inputs[1], &dx = call.output;
  if (dx.numel() == 0) return;
  if (dy.numel() == 0) return fill_value(dx, 0.0);
  DnnlContext& ctx = cpu_backend_of(call).dnnl();
  ConvGeometry g = conv_geometry(dx.dtype(), dx.shape(), w.shape(), dy.shape(), call.attrs);
  with_dnnl_errors("conv2d_backward_data", [&] {
    dnnl::primitive p = ctx.primitive("conv_bwd_data " + g.key, [&] {
      dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, g.x_md, g.w_md, g.y_md,
                                                 g.strides, g.dilation, g.padding, g.padding);
      return dnnl::convolution_backward_data(
          dnnl::convolution_backward_data::primitive_desc(desc, ctx.engine(), conv_forward_pd(g, ctx.engine())));
    });
    ctx.execute(p, {{DNNL_ARG_DIFF_DST, ctx.memory(g.y_md, dy.raw_data())},
                    {DNNL_ARG_WEIGHTS, ctx.memory(g.w_md, w.raw_data())},
                    {DNNL_ARG_DIFF_SRC, ctx.memory(g.x_md, dx.raw_data())}});
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
      dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, g.x_md, g.w_md, g.y_md,
                                                    g.strides, g.dilation, g.padding, g.padding);
      return dnnl::convolution_backward_weights(dnnl::convolution_backward_weights::primitive_desc(
          desc, ctx.engine(), conv_forward_pd(g, ctx.engine())));
    });
    ctx.execute(p, {{DNNL_ARG_SRC, ctx.memory(g.x_md, x.raw_data())},
                    {DNNL_ARG_DIFF_DST, ctx.memory(g.y_md, dy.raw_data())},
                    {DNNL_ARG_DIFF_WEIGHTS, ctx.memory(g.w_md, dw.raw_data())}});
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

// Each (n, c) plane is independent: planes in parallel, windows scanned row-major so that the
// first maximal element wins, as in ref.
template <typename T>
void max_pool2d_backward_planes(const Tensor& x, const Tensor& dy, const Tensor& dx, const Attrs& a) {
  const int64_t planes = x.shape()[0] * x.shape()[1];
  const int64_t h = x.shape()[2], w = x.shape()[3], oh = dy.shape()[2], ow = dy.shape()[3];
  const T* px = ptr<const T>(x);
  const T* pdy = ptr<const T>(dy);
  T* pdx = ptr<T>(dx);
  parallel_for(planes, planes * oh * ow * a.kernel[0] * a.kernel[1], [&](int64_t begin, int64_t end) {
    std::vector<float> acc(static_cast<size_t>(h * w));
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = px + plane * h * w;
      const T* dyp = pdy + plane * oh * ow;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          float best = -std::numeric_limits<float>::infinity();
          int64_t best_at = -1;
          for (int64_t ki = 0; ki < a.kernel[0]; ++ki) {
            int64_t r = i * a.stride[0] - a.padding[0] + ki * a.dilation[0];
            if (r < 0 || r >= h) continue;
            for (int64_t kj = 0; kj < a.kernel[1]; ++kj) {
              int64_t c = j * a.stride[1] - a.padding[1] + kj * a.dilation[1];
              if (c < 0 || c >= w) continue;
              float v = static_cast<float>(load(xp[r * w + c]));
              if (best_at < 0 || v > best) best = v, best_at = r * w + c;
            }
          }
          if (best_at >= 0) acc[best_at] += static_cast<float>(load(dyp[i * ow + j]));
        }
      }
      T* dxp = pdx + plane * h * w;
      for (int64_t k = 0; k < h * w; ++k) dxp[k] = store<T>(static_cast<Compute<T>>(acc[k]));
    }
  });
}

void max_pool2d_backward_kernel(const KernelCall& call) {  // (x, dy) -> dx
  if (call.output.numel() == 0) return;
  dispatch_dtype(call.output.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bf16>)
      max_pool2d_backward_planes<T>(call.inputs[0], call.inputs[1], call.output, call.attrs);
    else GPUML_FAIL(ErrorKind::Internal, "max_pool2d_backward: no cpu kernel for {}", call.output.dtype());
  });
}

}  // namespace

void register_conv_pool_kernels(CpuBackend& backend) {
  std::initializer_list<DType> f32_only{DType::f32}, with_bf16{DType::f32, DType::bf16};
  auto dtypes = backend.dnnl().supports_bf16() ? with_bf16 : f32_only;
  backend.add_kernel(OpId::conv2d, conv2d_kernel, dtypes, false);
  backend.add_kernel(OpId::conv2d_backward_data, conv2d_backward_data_kernel, dtypes, false);
  backend.add_kernel(OpId::conv2d_backward_filter, conv2d_backward_filter_kernel, dtypes, false);
  backend.add_kernel(OpId::max_pool2d, pool_kernel<OpId::max_pool2d>, dtypes, false);
  backend.add_kernel(OpId::avg_pool2d, pool_kernel<OpId::avg_pool2d>, dtypes, false);
  backend.add_kernel(OpId::avg_pool2d_backward, avg_pool2d_backward_kernel, dtypes, false);
  backend.add_kernel(OpId::max_pool2d_backward, max_pool2d_backward_kernel, dtypes, false);
}

}  // namespace gpuml::cpu
