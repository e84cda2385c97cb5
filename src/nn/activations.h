// Parameter-free elementwise layers: ReLU, GELU (erf, or the tanh approximation), Tanh, Sigmoid.
//
//   ReLU relu_layer;  Sym y = relu_layer.forward(x, ctx, "2");
//   GELU gelu_layer(/*tanh_approximation*/ true);   // torch.nn.GELU(approximate="tanh")
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class ReLU : public Module {
 public:
  std::string type_name() const override { return "ReLU"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override {
    return relu(x);
  }
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override { return "ReLU"; }
};

class GELU : public Module {
 public:
  explicit GELU(bool tanh_approximation = false) : tanh_(tanh_approximation) {}
  std::string type_name() const override { return "GELU"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override {
    return gelu(x, tanh_);
  }
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override { return tanh_ ? "GELU(tanh)" : "GELU"; }
  nlohmann::json to_json() const override;

 private:
  bool tanh_;
};

class Tanh : public Module {
 public:
  std::string type_name() const override { return "Tanh"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override {
    return tanh(x);
  }
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override { return "Tanh"; }
};

class Sigmoid : public Module {
 public:
  std::string type_name() const override { return "Sigmoid"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override {
    return sigmoid(x);
  }
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override { return "Sigmoid"; }
};

}  // namespace gpuml::nn
