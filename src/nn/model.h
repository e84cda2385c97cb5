// A model: a root Sequential plus the per-sample input shape, built from a JSON file or a preset.
// Parameters are named exactly like PyTorch's state_dict for the same nn.Sequential, so weights
// move between the two by name.
//
//   Model m = Model::from_json_file("cnn.json");   // or Model::preset("mlp")
//   m.parameter_count();                            // 235146 for "mlp"
//   std::map<std::string, Tensor> values = m.init_values(/*seed*/ 0);
//   Graph g;
//   Sym x = g.input("x", {{128, 1, 28, 28}, DType::f32});
//   auto leaves = declare_params(g, m.param_infos());
//   ForwardContext ctx{g, /*training*/ false, [&](const std::string& n) { return leaves.at(n); }};
//   Sym logits = m.forward(x, ctx);                 // (128, 10)
//
// Model JSON: {"input_shape": [1, 28, 28], "layers": [{"type": "Conv2d", "in_channels": 1,
// "out_channels": 32, "kernel_size": 3, "padding": 1}, {"type": "ReLU"}, ...]}; each layer takes
// PyTorch's argument names (layer_json.cpp lists them) and an optional "name" that replaces its
// index in parameter names. Unknown fields are errors.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "nn/sequential.h"

namespace gpuml::nn {

class Model {
 public:
  Model(Shape input_shape, std::unique_ptr<Sequential> root);

  // Throws ErrorKind::Invalid naming the layer index and field for any mistake, including
  // layers whose shapes do not chain ("layer 7 (Linear): expects 100 input features, gets 3136").
  static Model from_json(const nlohmann::json& spec);
  // As from_json, errors prefixed with the path; an unreadable file is ErrorKind::Io.
  static Model from_json_file(const std::string& path);
  // "mlp" and "cnn": the reference models of bench/torch_fmnist.py (Fashion-MNIST, 1x28x28 -> 10).
  static Model preset(const std::string& name);
  static std::vector<std::string> preset_names();

  nlohmann::json to_json() const;  // from_json(to_json()) rebuilds the same model

  const Sequential& root() const { return *root_; }
  const Shape& input_shape() const { return input_shape_; }    // per sample, e.g. (1, 28, 28)
  const Shape& output_shape() const { return output_shape_; }  // per sample, e.g. (10)
  int64_t num_classes() const;  // output_shape()[0] when the output is 1-d, else 0

  // state_dict entries in PyTorch's order, buffers included (trainable = false).
  const std::vector<ParamInfo>& param_infos() const { return infos_; }
  // Trainable elements: torch's sum(p.numel() for p in model.parameters()).
  int64_t parameter_count() const;
  int64_t buffer_count() const;      // elements of the buffers
  size_t state_bytes() const;        // bytes of parameters and buffers
  int64_t flops_per_sample() const;  // forward pass

  // Weight tying (module.h ties()): (alias, source) full names, e.g. ("head.weight", "wte.weight").
  const std::vector<std::pair<std::string, std::string>>& ties() const { return ties_; }
  // Weights as files hold them -> one value per state_dict entry: an alias given alone becomes its
  // source; given beside its source, the two must hold the same values (Invalid naming both if
  // not) and the alias is dropped. Without ties, returns `weights` unchanged.
  std::vector<std::pair<std::string, Tensor>> untie(std::vector<std::pair<std::string, Tensor>> weights) const;
  // The reverse, for files PyTorch loads strictly: each alias added after its source's entry.
  std::vector<std::pair<std::string, Tensor>> with_ties(std::vector<std::pair<std::string, Tensor>> weights) const;

  // PyTorch's default init drawn with Philox (init.h), host tensors keyed by state_dict name.
  std::map<std::string, Tensor> init_values(uint64_t seed) const;

  // x: (N, input_shape...). Checks the shape, then runs the layers.
  Sym forward(Sym x, ForwardContext& ctx) const;

 private:
  Shape input_shape_;
  std::unique_ptr<Sequential> root_;
  Shape output_shape_;
  std::vector<ParamInfo> infos_;
  std::vector<std::pair<std::string, std::string>> ties_;
};

}  // namespace gpuml::nn
