// Conv2d (torch.nn.Conv2d): cross-correlation over (N, C, H, W) with square kernels and symmetric
// padding; weight (O, C/groups, k, k), bias (O) added as a (1, O, 1, 1) broadcast.
//
//   Conv2d conv(1, 32, /*kernel*/ 3, /*stride*/ 1, /*padding*/ 1);
//   Sym y = conv.forward(x, ctx, "0");   // x (N, 1, 28, 28) -> (N, 32, 28, 28)
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1, bool bias = true);

  std::string type_name() const override { return "Conv2d"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

 private:
  Shape weight_shape() const { return {out_, in_ / groups_, kernel_, kernel_}; }

  int64_t in_, out_, kernel_, stride_, padding_, dilation_, groups_;
  bool bias_;
};

// Output size of a window op along one spatial dim, as PyTorch computes it (floor mode).
int64_t window_output_size(int64_t size, int64_t kernel, int64_t stride, int64_t padding,
                           int64_t dilation);

}  // namespace gpuml::nn
