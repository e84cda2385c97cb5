// Linear (torch.nn.Linear): y = x W^T + b over the last dim. weight (out, in), bias (out).
//
//   Linear fc(784, 256);                 // state_dict: weight (256, 784), bias (256)
//   Sym y = fc.forward(x, ctx, "1");     // x (N, 784) -> (N, 256), reads "1.weight", "1.bias"
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);

  std::string type_name() const override { return "Linear"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  bool bias_;
};

}  // namespace gpuml::nn
