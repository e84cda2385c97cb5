#include "nn/module.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

Sym ForwardContext::get(const std::string& full_name, const Shape& shape) const {
  GPUML_CHECK(value != nullptr, "ForwardContext has no value function (needed for '{}')",
              full_name);
  Sym s = value(full_name);
  GPUML_CHECK(s.belongs_to(graph) && s.id >= 0, "ForwardContext: no value for '{}' in this graph",
              full_name);
  GPUML_CHECK_SHAPE(s.shape() == shape, "ForwardContext: '{}' has shape {}, the module expects {}",
                    full_name, shape_str(s.shape()), shape_str(shape));
  return s;
}

nlohmann::json Module::to_json() const {
  return nlohmann::json{{"type", type_name()}};
}

std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::map<std::string, Sym> declare_params(Graph& graph, const std::vector<ParamInfo>& infos) {
  std::map<std::string, Sym> leaves;
  for (const ParamInfo& info : infos)
    leaves[info.name] = graph.param(info.name, {info.shape, info.dtype});
  return leaves;
}

}  // namespace gpuml::nn
