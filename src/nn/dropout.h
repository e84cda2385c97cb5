// Dropout (torch.nn.Dropout): in training, zeroes each element with probability p and scales the
// rest by 1/(1-p), with Philox stream (ctx.dropout_seed, ctx.rng_offset); identity in eval.
//
//   Dropout drop(0.25);
//   Sym y = drop.forward(x, ctx, "2");   // advances ctx.rng_offset by philox_blocks(numel(x))
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);

  std::string type_name() const override { return "Dropout"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override;
  nlohmann::json to_json() const override;

 private:
  double p_;
};

}  // namespace gpuml::nn
