#include "nn/sequential.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

void Sequential::add(std::unique_ptr<Module> module) {
  add(std::to_string(children_.size()), std::move(module));
}

void Sequential::add(const std::string& name, std::unique_ptr<Module> module) {
  GPUML_CHECK(module != nullptr, "Sequential: child '{}' is null", name);
  GPUML_CHECK(!name.empty() && name.find('.') == std::string::npos,
              "Sequential: child name '{}' must be non-empty and contain no '.'", name);
  for (const Child& c : children_)
    GPUML_CHECK(c.name != name, "Sequential: two children named '{}'", name);
  children_.push_back({name, std::move(module)});
}

Sym Sequential::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  for (const Child& c : children_) x = c.module->forward(x, ctx, join_name(prefix, c.name));
  return x;
}

void Sequential::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  for (const Child& c : children_) c.module->params(join_name(prefix, c.name), out);
}

void Sequential::init(const std::string& prefix, ParamInitializer& initializer) const {
  for (const Child& c : children_) c.module->init(join_name(prefix, c.name), initializer);
}

std::vector<Shape> Sequential::child_output_shapes(const Shape& in) const {
  std::vector<Shape> shapes;
  Shape s = in;
  for (size_t i = 0; i < children_.size(); ++i) {
    const Module& m = *children_[i].module;
    try {
      s = m.output_shape(s);
    } catch (const Error& e) {
      GPUML_FAIL(e.kind(), "layer {} ({}): {}", i, m.type_name(), e.message());
    }
    shapes.push_back(s);
  }
  return shapes;
}

Shape Sequential::output_shape(const Shape& in) const {
  std::vector<Shape> shapes = child_output_shapes(in);
  return shapes.empty() ? in : shapes.back();
}

int64_t Sequential::flops(const Shape& in) const {
  int64_t total = 0;
  Shape s = in;
  for (const Child& c : children_) {
    total += c.module->flops(s);
    s = c.module->output_shape(s);
  }
  return total;
}

std::string Sequential::describe() const {
  return fmt::format("Sequential({} layers)", children_.size());
}

nlohmann::json Sequential::to_json() const {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < children_.size(); ++i) {
    nlohmann::json j = children_[i].module->to_json();
    if (children_[i].name != std::to_string(i)) j["name"] = children_[i].name;
    layers.push_back(std::move(j));
  }
  nlohmann::json j = Module::to_json();
  j["layers"] = std::move(layers);
  return j;
}

}  // namespace gpuml::nn
