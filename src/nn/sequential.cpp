#include "nn/sequential.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/spelling.h"
#include "nn/merge.h"

namespace gpuml::nn {

void Sequential::add(std::unique_ptr<Module> module) {
  add(std::to_string(children_.size()), std::move(module));
}

void Sequential::add(const std::string& name, std::unique_ptr<Module> module) { add(name, std::move(module), {}); }

void Sequential::add(const std::string& name, std::unique_ptr<Module> module, std::vector<std::string> inputs) {
  GPUML_CHECK(module != nullptr, "Sequential: child '{}' is null", name);
  GPUML_CHECK(!name.empty() && name.find('.') == std::string::npos && name != "input",
              "Sequential: child name '{}' must be non-empty, contain no '.' and not be 'input'", name);
  for (const Child& c : children_)
    GPUML_CHECK(c.name != name, "Sequential: two children named '{}'", name);
  for (const std::string& in : inputs) {
    const bool known = in == "input" || std::any_of(children_.begin(), children_.end(),
                                                     [&](const Child& c) { return c.name == in; });
    GPUML_CHECK(known, "{} '{}': input '{}' is not an earlier layer's name (or 'input')", module->type_name(), name,
                in);
  }
  const bool merges = dynamic_cast<const Merge*>(module.get()) != nullptr;
  GPUML_CHECK(!merges || inputs.size() >= 2,
              "{} '{}' combines two or more earlier outputs: give it \"inputs\", e.g. [\"a\", \"b\"] (got {})",
              module->type_name(), name, count_of(static_cast<int64_t>(inputs.size()), "input"));
  GPUML_CHECK(merges || inputs.size() <= 1, "{} '{}' takes one input, got {}", module->type_name(), name,
              inputs.size());
  children_.push_back({name, std::move(module), std::move(inputs)});
}

template <typename T, typename Apply>
std::vector<T> Sequential::run(const T& in, Apply&& apply) const {
  std::vector<T> values;
  values.reserve(children_.size());
  auto value_of = [&](const std::string& name) -> const T& {
    if (name == "input") return in;
    for (size_t i = 0; i < values.size(); ++i)
      if (children_[i].name == name) return values[i];
    GPUML_FAIL(ErrorKind::Internal, "Sequential: no earlier child '{}'", name);
  };
  for (const Child& c : children_) {
    std::vector<T> args;
    if (c.inputs.empty()) args.push_back(values.empty() ? in : values.back());
    for (const std::string& name : c.inputs) args.push_back(value_of(name));
    values.push_back(apply(c, args));
  }
  return values;
}

Sym Sequential::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  std::vector<Sym> values = run(x, [&](const Child& c, const std::vector<Sym>& args) {
    if (const auto* m = dynamic_cast<const Merge*>(c.module.get())) return m->merge(args, ctx);
    return c.module->forward(args[0], ctx, join_name(prefix, c.name));
  });
  return values.empty() ? x : values.back();
}

void Sequential::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  for (const Child& c : children_) c.module->params(join_name(prefix, c.name), out);
}

void Sequential::init(const std::string& prefix, ParamInitializer& initializer) const {
  for (const Child& c : children_) c.module->init(join_name(prefix, c.name), initializer);
}

void Sequential::ties(const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) const {
  for (const Child& c : children_) c.module->ties(join_name(prefix, c.name), out);
}

std::vector<Shape> Sequential::child_output_shapes(const Shape& in) const {
  size_t index = 0;
  return run(in, [&](const Child& c, const std::vector<Shape>& args) {
    try {
      const auto* m = dynamic_cast<const Merge*>(c.module.get());
      Shape out = m ? m->merged_shape(args) : c.module->output_shape(args[0]);
      ++index;
      return out;
    } catch (const Error& e) {
      GPUML_FAIL(e.kind(), "layer {} ({}): {}", index, c.module->type_name(), e.message());
    }
  });
}

Shape Sequential::output_shape(const Shape& in) const {
  std::vector<Shape> shapes = child_output_shapes(in);
  return shapes.empty() ? in : shapes.back();
}

int64_t Sequential::flops(const Shape& in) const {
  int64_t total = 0;
  run(in, [&](const Child& c, const std::vector<Shape>& args) {
    const auto* m = dynamic_cast<const Merge*>(c.module.get());
    Shape out = m ? m->merged_shape(args) : c.module->output_shape(args[0]);
    total += c.module->flops(m ? out : args[0]);
    return out;
  });
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
    if (!children_[i].inputs.empty()) j["inputs"] = children_[i].inputs;
    layers.push_back(std::move(j));
  }
  nlohmann::json j = Module::to_json();
  j["layers"] = std::move(layers);
  return j;
}

}  // namespace gpuml::nn
