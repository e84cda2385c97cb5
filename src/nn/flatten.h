// Flatten (torch.nn.Flatten with start_dim=1, end_dim=-1): (N, d1, d2, ...) -> (N, d1*d2*...).
//
//   Flatten flat;  Sym y = flat.forward(x, ctx, "6");   // (N, 64, 7, 7) -> (N, 3136)
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Flatten : public Module {
 public:
  std::string type_name() const override { return "Flatten"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override {
    return flatten(x, 1);
  }
  Shape output_shape(const Shape& in) const override { return {numel(in)}; }
  std::string describe() const override { return "Flatten"; }
};

}  // namespace gpuml::nn
