// conv2d at the reference CNN's shapes, forward and both backward passes: gpuml's cpu backend
// (eager and kernel-only, see gpuml_op_bench.h), oneDNN called directly with plain NCHW/OIHW
// buffers (what gpuml's tensors are), oneDNN in its own blocked layouts reordered once outside the
// loop (its best case), and, for forward, OpenBLAS im2col + sgemm per image.
#include <cblas.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "bench_common.h"
#include "gpuml_op_bench.h"

namespace gpuml::bench {

namespace {

enum class ConvPass { forward, backward_data, backward_filter };

const char* pass_name(ConvPass pass) {
  switch (pass) {
    case ConvPass::forward:
      return "fwd";
    case ConvPass::backward_data:
      return "bwd_data";
    case ConvPass::backward_filter:
      return "bwd_filter";
  }
  return "?";
}

void bench_gpuml_conv(benchmark::State& state, const ConvShape& s, ConvPass pass, GpumlMode mode) {
  Shape x_shape{s.n, s.c, s.h, s.w}, w_shape{s.o, s.c, s.kh, s.kw},
      y_shape{s.n, s.o, s.oh(), s.ow()};
  Attrs attrs;
  attrs.stride = {s.stride, s.stride};
  attrs.padding = {s.pad, s.pad};
  OpId op = OpId::conv2d;
  std::vector<Tensor> inputs;
  if (pass == ConvPass::forward) {
    inputs = {random_host_tensor(x_shape, 1), random_host_tensor(w_shape, 2)};
  } else if (pass == ConvPass::backward_data) {
    op = OpId::conv2d_backward_data;
    attrs.shape = x_shape;
    inputs = {random_host_tensor(y_shape, 3), random_host_tensor(w_shape, 2)};  // dy, w
  } else {
    op = OpId::conv2d_backward_filter;
    attrs.shape = w_shape;
    inputs = {random_host_tensor(x_shape, 1), random_host_tensor(y_shape, 3)};  // x, dy
  }
  bench_gpuml_op(state, op, inputs, attrs, s.flops(), mode);
}

// One oneDNN convolution primitive with its arguments bound. With `blocked`, oneDNN picks the
// layouts (format any) and the inputs are reordered into them once, before timing.
class OnednnConv {
 public:
  OnednnConv(const ConvShape& s, ConvPass pass, bool blocked)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    using dnnl::memory;
    using tag = memory::format_tag;
    memory::dims x_dims{s.n, s.c, s.h, s.w}, w_dims{s.o, s.c, s.kh, s.kw},
        y_dims{s.n, s.o, s.oh(), s.ow()};
    memory::dims strides{s.stride, s.stride}, pads{s.pad, s.pad};
    auto f32 = memory::data_type::f32;
    memory::desc x_user(x_dims, f32, tag::nchw), w_user(w_dims, f32, tag::oihw),
        y_user(y_dims, f32, tag::nchw);
    memory::desc x_md = blocked ? memory::desc(x_dims, f32, tag::any) : x_user;
    memory::desc w_md = blocked ? memory::desc(w_dims, f32, tag::any) : w_user;
    memory::desc y_md = blocked ? memory::desc(y_dims, f32, tag::any) : y_user;
    x_ = random_floats(static_cast<size_t>(s.n * s.c * s.h * s.w), 1);
    w_ = random_floats(static_cast<size_t>(s.o * s.c * s.kh * s.kw), 2);
    y_ = random_floats(static_cast<size_t>(s.n * s.o * s.oh() * s.ow()), 3);

    dnnl::convolution_forward::primitive_desc fwd_pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct, x_md, w_md, y_md,
                                        strides, pads, pads),
        engine_);
    if (pass == ConvPass::forward) {
      primitive_ = dnnl::convolution_forward(fwd_pd);
      bind(DNNL_ARG_SRC, x_user, fwd_pd.src_desc(), x_.data());
      bind(DNNL_ARG_WEIGHTS, w_user, fwd_pd.weights_desc(), w_.data());
      args_[DNNL_ARG_DST] = memory(fwd_pd.dst_desc(), engine_);
    } else if (pass == ConvPass::backward_data) {
      dnnl::convolution_backward_data::primitive_desc pd(
          dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, x_md, w_md,
                                                y_md, strides, pads, pads),
          engine_, fwd_pd);
      primitive_ = dnnl::convolution_backward_data(pd);
      bind(DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), y_.data());
      bind(DNNL_ARG_WEIGHTS, w_user, pd.weights_desc(), w_.data());
      args_[DNNL_ARG_DIFF_SRC] = memory(pd.diff_src_desc(), engine_);
    } else {
      dnnl::convolution_backward_weights::primitive_desc pd(
          dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, x_md, w_md,
                                                   y_md, strides, pads, pads),
          engine_, fwd_pd);
      primitive_ = dnnl::convolution_backward_weights(pd);
      bind(DNNL_ARG_SRC, x_user, pd.src_desc(), x_.data());
      bind(DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), y_.data());
      args_[DNNL_ARG_DIFF_WEIGHTS] = memory(pd.diff_weights_desc(), engine_);
    }
  }

  void run() {
    primitive_.execute(stream_, args_);
    stream_.wait();
  }

 private:
  // Binds a user buffer, reordered into the primitive's layout when that differs.
  void bind(int arg, const dnnl::memory::desc& user_md, const dnnl::memory::desc& wanted,
            float* data) {
    dnnl::memory user(user_md, engine_, data);
    if (user_md == wanted) {
      args_[arg] = user;
      return;
    }
    dnnl::memory converted(wanted, engine_);
    dnnl::reorder(user, converted).execute(stream_, user, converted);
    stream_.wait();
    args_[arg] = converted;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<float> x_, w_, y_;  // (N, C, H, W), (O, C, kH, kW), (N, O, OH, OW)
  dnnl::primitive primitive_;
  std::unordered_map<int, dnnl::memory> args_;
};

void bench_onednn_conv(benchmark::State& state, const ConvShape& s, ConvPass pass, bool blocked) {
  OnednnConv conv(s, pass, blocked);
  conv.run();
  for (auto _ : state) conv.run();
  set_gflops(state, s.flops());
}

// Forward as im2col + sgemm, one image at a time: w (O, C*kH*kW) @ col (C*kH*kW, OH*OW).
void bench_openblas_im2col_conv(benchmark::State& state, const ConvShape& s) {
  const int64_t oh = s.oh(), ow = s.ow(), patch = s.c * s.kh * s.kw;
  std::vector<float> x =
      random_floats(static_cast<size_t>(s.n * s.c * s.h * s.w), 1);           // (N, C, H, W)
  std::vector<float> w = random_floats(static_cast<size_t>(s.o * patch), 2);  // (O, C*kH*kW)
  std::vector<float> col(static_cast<size_t>(patch * oh * ow));               // (C*kH*kW, OH*OW)
  std::vector<float> y(static_cast<size_t>(s.n * s.o * oh * ow));             // (N, O, OH, OW)
  auto conv = [&] {
    for (int64_t img = 0; img < s.n; ++img) {
      const float* xi = x.data() + img * s.c * s.h * s.w;
      for (int64_t c = 0; c < s.c; ++c)
        for (int64_t ky = 0; ky < s.kh; ++ky)
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            float* row = col.data() + ((c * s.kh + ky) * s.kw + kx) * oh * ow;
            for (int64_t oy = 0; oy < oh; ++oy) {
              int64_t iy = oy * s.stride - s.pad + ky;
              for (int64_t ox = 0; ox < ow; ++ox) {
                int64_t ix = ox * s.stride - s.pad + kx;
                bool inside = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w;
                row[oy * ow + ox] = inside ? xi[(c * s.h + iy) * s.w + ix] : 0.f;
              }
            }
          }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(s.o),
                  static_cast<int>(oh * ow), static_cast<int>(patch), 1.f, w.data(),
                  static_cast<int>(patch), col.data(), static_cast<int>(oh * ow), 0.f,
                  y.data() + img * s.o * oh * ow, static_cast<int>(oh * ow));
    }
  };
  conv();
  for (auto _ : state) {
    conv();
    benchmark::DoNotOptimize(y.data());
  }
  set_gflops(state, s.flops());
}

}  // namespace

void register_conv_benchmarks() {
  for (const ConvShape& s : conv_shapes()) {
    for (ConvPass pass : {ConvPass::forward, ConvPass::backward_data, ConvPass::backward_filter}) {
      std::string prefix = "conv2d/" + s.name + "_" + pass_name(pass) + "/";
      benchmark::RegisterBenchmark((prefix + "gpuml").c_str(), bench_gpuml_conv, s, pass,
                                   GpumlMode::eager)
          ->UseRealTime();
      benchmark::RegisterBenchmark((prefix + "gpuml_kernel").c_str(), bench_gpuml_conv, s, pass,
                                   GpumlMode::kernel)
          ->UseRealTime();
      benchmark::RegisterBenchmark((prefix + "onednn").c_str(), bench_onednn_conv, s, pass, false)
          ->UseRealTime();
      benchmark::RegisterBenchmark((prefix + "onednn_blocked").c_str(), bench_onednn_conv, s, pass,
                                   true)
          ->UseRealTime();
      if (pass == ConvPass::forward)
        benchmark::RegisterBenchmark((prefix + "openblas_im2col").c_str(),
                                     bench_openblas_im2col_conv, s)
            ->UseRealTime();
    }
  }
}

}  // namespace gpuml::bench
