#include "nn/conv2d.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

int64_t window_output_size(int64_t size, int64_t kernel, int64_t stride, int64_t padding,
                           int64_t dilation) {
  int64_t span = dilation * (kernel - 1) + 1;
  int64_t padded = size + 2 * padding;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
               int64_t padding, int64_t dilation, int64_t groups, bool bias)
    : in_(in_channels),
      out_(out_channels),
      kernel_(kernel_size),
      stride_(stride),
      padding_(padding),
      dilation_(dilation),
      groups_(groups),
      bias_(bias) {
  GPUML_CHECK(
      in_ > 0 && out_ > 0 && kernel_ > 0 && stride_ > 0 && dilation_ > 0 && groups_ > 0 &&
          padding_ >= 0,
      "Conv2d: channels, kernel_size, stride, dilation, groups must be > 0 and padding >= 0 "
      "(got in {}, out {}, kernel {}, stride {}, padding {}, dilation {}, groups {})",
      in_, out_, kernel_, stride_, padding_, dilation_, groups_);
  GPUML_CHECK(in_ % groups_ == 0 && out_ % groups_ == 0,
              "Conv2d: in_channels {} and out_channels {} must be divisible by groups {}", in_,
              out_, groups_);
}

Sym Conv2d::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  Sym w = ctx.get(join_name(prefix, "weight"), weight_shape());             // (O, C/g, k, k)
  Sym y = conv2d(x, w, conv_attrs(stride_, padding_, dilation_, groups_));  // (N, O, H', W')
  if (bias_) y = add(y, reshape(ctx.get(join_name(prefix, "bias"), {out_}), {1, out_, 1, 1}));
  return y;
}

void Conv2d::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  out.push_back({join_name(prefix, "weight"), weight_shape()});
  if (bias_) out.push_back({join_name(prefix, "bias"), {out_}});
}

void Conv2d::init(const std::string& prefix, ParamInitializer& initializer) const {
  double bound = default_init_bound(in_ / groups_ * kernel_ * kernel_);
  initializer.uniform(join_name(prefix, "weight"), weight_shape(), bound);
  if (bias_) initializer.uniform(join_name(prefix, "bias"), {out_}, bound);
}

Shape Conv2d::output_shape(const Shape& in) const {
  GPUML_CHECK(in.size() == 3, "expects a (C, H, W) input per sample, gets {}", shape_str(in));
  GPUML_CHECK(in[0] == in_, "expects {} input channels, gets {} (per-sample input {})", in_, in[0],
              shape_str(in));
  int64_t h = window_output_size(in[1], kernel_, stride_, padding_, dilation_);
  int64_t w = window_output_size(in[2], kernel_, stride_, padding_, dilation_);
  GPUML_CHECK(h > 0 && w > 0, "input {} is smaller than the kernel {} (dilation {}, padding {})",
              shape_str(in), kernel_, dilation_, padding_);
  return {out_, h, w};
}

int64_t Conv2d::flops(const Shape& in) const {
  Shape out = output_shape(in);
  int64_t outputs = numel(out);
  return outputs * (2 * (in_ / groups_) * kernel_ * kernel_ + (bias_ ? 1 : 0));
}

std::string Conv2d::describe() const {
  std::string s = fmt::format("Conv2d({} -> {}, {}x{}", in_, out_, kernel_, kernel_);
  if (stride_ != 1) s += fmt::format(", stride {}", stride_);
  if (padding_ != 0) s += fmt::format(", pad {}", padding_);
  if (dilation_ != 1) s += fmt::format(", dilation {}", dilation_);
  if (groups_ != 1) s += fmt::format(", groups {}", groups_);
  if (!bias_) s += ", no bias";
  return s + ")";
}

nlohmann::json Conv2d::to_json() const {
  nlohmann::json j = Module::to_json();
  j["in_channels"] = in_;
  j["out_channels"] = out_;
  j["kernel_size"] = kernel_;
  if (stride_ != 1) j["stride"] = stride_;
  if (padding_ != 0) j["padding"] = padding_;
  if (dilation_ != 1) j["dilation"] = dilation_;
  if (groups_ != 1) j["groups"] = groups_;
  if (!bias_) j["bias"] = false;
  return j;
}

}  // namespace gpuml::nn
