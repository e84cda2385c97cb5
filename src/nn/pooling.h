// MaxPool2d and AvgPool2d (torch.nn.*Pool2d, floor mode): square windows over (N, C, H, W).
// stride 0 means "same as the kernel", PyTorch's default.
//
//   MaxPool2d pool(2);                   // (N, 32, 28, 28) -> (N, 32, 14, 14)
//   AvgPool2d avg(3, /*stride*/ 1, /*padding*/ 1, /*count_include_pad*/ false);
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Pool2d : public Module {
 public:
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;  // one compare/add per window element
  std::string describe() const override;
  nlohmann::json to_json() const override;

 protected:
  Pool2d(const char* type, int64_t kernel_size, int64_t stride, int64_t padding);
  int64_t kernel_, stride_, padding_;
};

class MaxPool2d : public Pool2d {
 public:
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0)
      : Pool2d("MaxPool2d", kernel_size, stride, padding) {}
  std::string type_name() const override { return "MaxPool2d"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
};

class AvgPool2d : public Pool2d {
 public:
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0,
                     bool count_include_pad = true)
      : Pool2d("AvgPool2d", kernel_size, stride, padding), count_include_pad_(count_include_pad) {}
  std::string type_name() const override { return "AvgPool2d"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  nlohmann::json to_json() const override;

 private:
  bool count_include_pad_;
};

}  // namespace gpuml::nn
