#include "nn/activations.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

nlohmann::json GELU::to_json() const {
  nlohmann::json j = Module::to_json();
  if (tanh_) j["approximate"] = "tanh";
  return j;
}

}  // namespace gpuml::nn
