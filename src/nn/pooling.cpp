#include "nn/pooling.h"

#include <nlohmann/json.hpp>

#include "nn/conv2d.h"  // window_output_size

namespace gpuml::nn {

Pool2d::Pool2d(const char* type, int64_t kernel_size, int64_t stride, int64_t padding)
    : kernel_(kernel_size), stride_(stride == 0 ? kernel_size : stride), padding_(padding) {
  GPUML_CHECK(kernel_ > 0 && stride_ > 0 && padding_ >= 0,
              "{}: kernel_size {} and stride {} must be > 0, padding {} >= 0", type, kernel_,
              stride_, padding_);
  // PyTorch's rule: a window must always see at least one real element.
  GPUML_CHECK(padding_ <= kernel_ / 2, "{}: padding {} must be at most half the kernel size {}",
              type, padding_, kernel_);
}

Shape Pool2d::output_shape(const Shape& in) const {
  GPUML_CHECK(in.size() == 3, "expects a (C, H, W) input per sample, gets {}", shape_str(in));
  int64_t h = window_output_size(in[1], kernel_, stride_, padding_, 1);
  int64_t w = window_output_size(in[2], kernel_, stride_, padding_, 1);
  GPUML_CHECK(h > 0 && w > 0, "input {} is smaller than the window {} (padding {})", shape_str(in),
              kernel_, padding_);
  return {in[0], h, w};
}

int64_t Pool2d::flops(const Shape& in) const {
  return numel(output_shape(in)) * kernel_ * kernel_;
}

std::string Pool2d::describe() const {
  std::string s = fmt::format("{}({}x{}", type_name(), kernel_, kernel_);
  if (stride_ != kernel_) s += fmt::format(", stride {}", stride_);
  if (padding_ != 0) s += fmt::format(", pad {}", padding_);
  return s + ")";
}

nlohmann::json Pool2d::to_json() const {
  nlohmann::json j = Module::to_json();
  j["kernel_size"] = kernel_;
  if (stride_ != kernel_) j["stride"] = stride_;
  if (padding_ != 0) j["padding"] = padding_;
  return j;
}

Sym MaxPool2d::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  return max_pool2d(x, kernel_, stride_, padding_);
}

Sym AvgPool2d::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  return avg_pool2d(x, kernel_, stride_, padding_, count_include_pad_);
}

nlohmann::json AvgPool2d::to_json() const {
  nlohmann::json j = Pool2d::to_json();
  if (!count_include_pad_) j["count_include_pad"] = false;
  return j;
}

}  // namespace gpuml::nn
