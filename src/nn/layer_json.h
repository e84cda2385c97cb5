// Layers from their JSON specs: the one table of layer types the model file understands.
//
//   auto layer = layer_from_json({{"type", "Linear"}, {"in_features", 784}, {"out_features", 10}},
//                                "layer 1");
//   layer.name;     // "" (none given; Sequential names it by index) or the spec's "name"
//   layer.module;   // std::unique_ptr<Module>: Linear(784 -> 10)
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/module.h"

namespace gpuml::nn {

struct NamedLayer {
  std::string name;  // "" when the spec has no "name"
  std::unique_ptr<Module> module;
  std::vector<std::string> inputs;  // "inputs": the earlier outputs it takes (nn/merge.h); empty: the previous
};

// `where` starts every error message ("layer 3"); the type is appended once known. Throws
// ErrorKind::Invalid for an unknown type (listing the known ones), a missing, mistyped or
// out-of-range field, or an unknown field.
NamedLayer layer_from_json(const nlohmann::json& spec, const std::string& where);

// "Linear", "Conv2d", ...: every type layer_from_json accepts.
std::vector<std::string> known_layer_types();

}  // namespace gpuml::nn
