// LayerNorm (torch.nn.LayerNorm): normalises over the trailing dims given by normalized_shape,
// biased variance; weight (ones) and bias (zeros) of normalized_shape when elementwise_affine.
//
//   LayerNorm ln({64});                  // x (N, T, 64) -> (N, T, 64); state_dict: weight, bias
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);

  std::string type_name() const override { return "LayerNorm"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

 private:
  Shape normalized_;
  double eps_;
  bool affine_;
};

}  // namespace gpuml::nn
