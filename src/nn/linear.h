// Linear (torch.nn.Linear): y = x W^T + b over the last dim. weight (out, in), bias (out).
// Init: PyTorch's U(-1/sqrt(in), 1/sqrt(in)), or N(0, init_std) for the weight and zero bias when
// init_std > 0 (GPT-2's init). tied_to: the full state_dict name of another (out, in) entry to use
// as the weight (weight tying, module.h ties()): then this layer has no weight of its own.
//
//   Linear fc(784, 256);                 // state_dict: weight (256, 784), bias (256)
//   Sym y = fc.forward(x, ctx, "1");     // x (N, 784) -> (N, 256), reads "1.weight", "1.bias"
//   Linear head(128, 65, false, 0.0, "wte.weight");   // reads wte.weight (65, 128)
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, double init_std = 0,
         std::string tied_to = {});

  std::string type_name() const override { return "Linear"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  // activation(forward(x)), the activation applied to the (rows, out) product before a 3-d or
  // larger input's reshape back, where the fusion pass sees it beside the product.
  Sym forward_then(Sym x, ForwardContext& ctx, const std::string& prefix, Sym (*activation)(Sym)) const;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  void ties(const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  bool bias_;
  double init_std_;
  std::string tied_to_;
};

}  // namespace gpuml::nn
