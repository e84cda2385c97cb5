// Layers that combine several earlier outputs of a model (residual branches, concatenated
// features). In the model JSON, a layer's optional "inputs" names the outputs it takes: earlier
// layers by name (their index when unnamed) and "input", the model's input; without "inputs" a
// layer takes the previous layer's output. Add and Concat take two or more.
//
//   {"type": "Conv2d", "name": "a", ...}, {"type": "ReLU", "name": "r"},
//   {"type": "Conv2d", "name": "b", ...}, {"type": "Add", "inputs": ["r", "b"]}   // r + b
//
// Parameters keep PyTorch's names by layer name ("a.weight"), as in a Sequential.
#pragma once

#include <vector>

#include "nn/module.h"

namespace gpuml::nn {

class Merge : public Module {
 public:
  // Merges take their inputs through merge(); called with one input, forward() refuses.
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  virtual Sym merge(const std::vector<Sym>& xs, ForwardContext& ctx) const = 0;
  // Per-sample shapes; throws ErrorKind::Invalid naming what does not fit.
  virtual Shape merged_shape(const std::vector<Shape>& in) const = 0;
};

// The elementwise sum of inputs of one shape (torch: a + b).
class Add : public Merge {
 public:
  std::string type_name() const override { return "Add"; }
  Sym merge(const std::vector<Sym>& xs, ForwardContext& ctx) const override;
  Shape merged_shape(const std::vector<Shape>& in) const override;
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override { return "Add"; }
};

// Inputs joined along `dim` of the batched tensor (torch.cat(xs, dim); dim >= 1, or negative from
// the end); every other dimension must agree.
class Concat : public Merge {
 public:
  explicit Concat(int64_t dim);
  std::string type_name() const override { return "Concat"; }
  Sym merge(const std::vector<Sym>& xs, ForwardContext& ctx) const override;
  Shape merged_shape(const std::vector<Shape>& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

 private:
  int64_t axis(size_t rank) const;  // per-sample axis for samples of `rank` dims
  int64_t dim_;
};

}  // namespace gpuml::nn
