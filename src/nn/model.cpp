#include "nn/model.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json_read.h"
#include "core/spelling.h"
#include "nn/json_fields.h"
#include "nn/layer_json.h"

namespace gpuml::nn {

Model::Model(Shape input_shape, std::unique_ptr<Sequential> root)
    : input_shape_(std::move(input_shape)), root_(std::move(root)) {
  GPUML_CHECK(root_ != nullptr, "Model: no layers");
  GPUML_CHECK(root_->size() > 0, "Model: the layer list is empty");
  for (int64_t d : input_shape_)
    GPUML_CHECK(d > 0, "Model: input_shape {} must have positive dims", shape_str(input_shape_));
  output_shape_ = root_->output_shape(input_shape_);
  root_->params("", infos_);
  root_->ties("", ties_);
  for (const auto& tie : ties_) {  // not a structured binding: clang refuses capturing one in a lambda
    const std::string &alias = tie.first, &source = tie.second;
    auto it = std::find_if(infos_.begin(), infos_.end(), [&](const ParamInfo& p) { return p.name == source; });
    GPUML_CHECK(it != infos_.end() && it->trainable, "'{}' is tied to '{}', which is no parameter of the model{}",
                alias, source, did_you_mean(source, [&] {
                  std::vector<std::string> names;
                  for (const ParamInfo& p : infos_) names.push_back(p.name);
                  return names;
                }()));
    GPUML_CHECK(std::none_of(infos_.begin(), infos_.end(), [&](const ParamInfo& p) { return p.name == alias; }),
                "'{}' is both a parameter and tied to '{}'", alias, source);
  }
}

std::vector<std::pair<std::string, Tensor>> Model::untie(std::vector<std::pair<std::string, Tensor>> weights) const {
  for (const auto& tie : ties_) {  // not a structured binding: clang refuses capturing one in a lambda
    const std::string &alias = tie.first, &source = tie.second;
    auto find = [&](const std::string& name) {
      return std::find_if(weights.begin(), weights.end(), [&](const auto& w) { return w.first == name; });
    };
    auto a = find(alias);
    if (a == weights.end()) continue;
    auto s = find(source);
    if (s == weights.end()) {
      a->first = source;
      continue;
    }
    GPUML_CHECK(a->second.shape() == s->second.shape() && a->second.to_doubles() == s->second.to_doubles(),
                "tied weights '{}' and '{}' hold different values; the model uses one tensor for both: give one of "
                "them, or the same values under both names",
                alias, source);
    weights.erase(a);
  }
  return weights;
}

std::vector<std::pair<std::string, Tensor>> Model::with_ties(std::vector<std::pair<std::string, Tensor>> weights) const {
  for (const auto& tie : ties_) {  // not a structured binding: clang refuses capturing one in a lambda
    const std::string &alias = tie.first, &source = tie.second;
    auto s = std::find_if(weights.begin(), weights.end(), [&](const auto& w) { return w.first == source; });
    GPUML_CHECK_KIND(ErrorKind::Internal, s != weights.end(), "Model::with_ties: no '{}' for '{}'", source, alias);
    weights.emplace_back(alias, s->second);
  }
  return weights;
}

Model Model::from_json(const nlohmann::json& spec) {
  JsonFields fields(spec, "model");
  Shape input_shape = fields.required_int_list("input_shape", 1);
  GPUML_CHECK(spec.at("input_shape").is_array(),
              "model: field 'input_shape' must be a list like [1, 28, 28]");
  const nlohmann::json& layers = fields.required_array("layers");
  fields.finish();
  GPUML_CHECK(!layers.empty(), "model: field 'layers' must not be empty");
  auto root = std::make_unique<Sequential>();
  for (size_t i = 0; i < layers.size(); ++i) {
    NamedLayer layer = layer_from_json(layers[i], fmt::format("layer {}", i));
    std::string name = layer.name.empty() ? std::to_string(i) : layer.name;
    for (const Sequential::Child& c : root->children())
      GPUML_CHECK(c.name != name, "layer {} ({}): name '{}' is already used by an earlier layer", i,
                  layer.module->type_name(), text_excerpt(name));
    try {
      root->add(name, std::move(layer.module), std::move(layer.inputs));
    } catch (const Error& e) {
      GPUML_FAIL(e.kind(), "layer {}: {}", i, e.message());
    }
  }
  return Model(std::move(input_shape), std::move(root));
}

Model Model::from_json_file(const std::string& path) {
  std::error_code ec;
  GPUML_CHECK_KIND(ErrorKind::Io, !std::filesystem::is_directory(path, ec),
                   "model file '{}' is a directory, not a JSON or ONNX file", path);
  std::ifstream in(path, std::ios::binary);
  GPUML_CHECK_KIND(ErrorKind::Io, in.good(), "cannot open model file '{}'", path);
  std::stringstream text;
  text << in.rdbuf();
  GPUML_CHECK_KIND(ErrorKind::Io, !in.bad(), "cannot read model file '{}'", path);
  nlohmann::json spec;
  const std::string where = fmt::format("model file '{}'", path);
  try {
    // nlohmann's parser is iterative; the guard refuses nesting past kJsonMaxDepth (json_read.h)
    // before anything recursive (an error message's dump, the layer reader) meets the value.
    const std::string s = text.str();
    spec = nlohmann::json::parse(s.begin(), s.end(), [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
      if (event == nlohmann::json::parse_event_t::array_start || event == nlohmann::json::parse_event_t::object_start)
        check_json_depth(depth, where, ErrorKind::Invalid);
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    // Syntax errors (parse_error) and numbers past a double (out_of_range 406, "4e707") alike.
    // The place as line:column (an editor's terms), counted from the byte the parser stopped at.
    const std::string s = text.str();
    const auto* syntax = dynamic_cast<const nlohmann::json::parse_error*>(&e);
    const size_t byte = syntax != nullptr ? syntax->byte : 0;
    if (syntax == nullptr)
      GPUML_FAIL(ErrorKind::Invalid, "model file '{}': not valid JSON: {}", path, text_excerpt(e.what(), 2 * kExcerptChars));
    const size_t stop = std::min(byte > 0 ? byte - 1 : 0, s.size());
    int64_t line = 1, column = 1;
    for (size_t i = 0; i < stop; ++i) {
      if (s[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    // nlohmann's text: "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..."
    std::string why = e.what();
    if (size_t colon = why.find(": "); colon != std::string::npos) why = why.substr(colon + 2);
    GPUML_FAIL(ErrorKind::Invalid, "model file '{}':{}:{}: not valid JSON: {}", path, line, column,
               text_excerpt(why, 2 * kExcerptChars));
  }
  try {
    return from_json(spec);
  } catch (const Error& e) {
    GPUML_FAIL(e.kind(), "model file '{}': {}", path, e.message());
  }
}

std::vector<std::string> Model::preset_names() {
  return {"mlp", "cnn"};
}

Model Model::preset(const std::string& name) {
  using nlohmann::json;
  auto linear = [](int64_t in, int64_t out) {
    return json{{"type", "Linear"}, {"in_features", in}, {"out_features", out}};
  };
  auto conv = [](int64_t in, int64_t out) {
    return json{{"type", "Conv2d"},
                {"in_channels", in},
                {"out_channels", out},
                {"kernel_size", 3},
                {"padding", 1}};
  };
  const json relu = {{"type", "ReLU"}}, flatten = {{"type", "Flatten"}};
  const json pool = {{"type", "MaxPool2d"}, {"kernel_size", 2}};
  json layers;
  if (name == "mlp") {
    layers =
        json::array({flatten, linear(784, 256), relu, linear(256, 128), relu, linear(128, 10)});
  } else if (name == "cnn") {
    layers = json::array({conv(1, 32), relu, pool, conv(32, 64), relu, pool, flatten,
                          linear(64 * 7 * 7, 128), relu, linear(128, 10)});
  } else {
    GPUML_FAIL(ErrorKind::Invalid, "unknown model preset '{}' (known: mlp, cnn)", name);
  }
  return from_json(json{{"input_shape", {1, 28, 28}}, {"layers", layers}});
}

nlohmann::json Model::to_json() const {
  nlohmann::json j;
  j["input_shape"] = input_shape_;
  j["layers"] = root_->to_json().at("layers");
  return j;
}

int64_t Model::num_classes() const {
  return output_shape_.size() == 1 ? output_shape_[0] : 0;
}

int64_t Model::parameter_count() const {
  int64_t total = 0;
  for (const ParamInfo& p : infos_)
    if (p.trainable) total += numel(p.shape);
  return total;
}

int64_t Model::buffer_count() const {
  int64_t total = 0;
  for (const ParamInfo& p : infos_)
    if (!p.trainable) total += numel(p.shape);
  return total;
}

size_t Model::state_bytes() const {
  size_t total = 0;
  for (const ParamInfo& p : infos_)
    total += static_cast<size_t>(numel(p.shape)) * dtype_size(p.dtype);
  return total;
}

int64_t Model::flops_per_sample() const {
  return root_->flops(input_shape_);
}

std::map<std::string, Tensor> Model::init_values(uint64_t seed) const {
  ParamInitializer initializer(seed);
  root_->init("", initializer);
  std::map<std::string, Tensor> values = initializer.take();
  GPUML_CHECK_KIND(ErrorKind::Internal, values.size() == infos_.size(),
                   "Model::init_values: {} values for {} state_dict entries", values.size(),
                   infos_.size());
  for (const ParamInfo& p : infos_) {
    auto it = values.find(p.name);
    GPUML_CHECK_KIND(
        ErrorKind::Internal,
        it != values.end() && it->second.shape() == p.shape && it->second.dtype() == p.dtype,
        "Model::init_values: '{}' was not initialised as {} {}", p.name, shape_str(p.shape),
        p.dtype);
  }
  return values;
}

Sym Model::forward(Sym x, ForwardContext& ctx) const {
  const Shape& xs = x.shape();
  bool fits = xs.size() == input_shape_.size() + 1 &&
              std::equal(input_shape_.begin(), input_shape_.end(), xs.begin() + 1);
  GPUML_CHECK_SHAPE(fits, "model input must be (N, {}) per the model's input_shape {}, got {}",
                    fmt::format("{}", fmt::join(input_shape_, ", ")), shape_str(input_shape_),
                    shape_str(xs));
  return root_->forward(x, ctx, "");
}

}  // namespace gpuml::nn
