#include "nn/layer_json.h"

#include <fmt/ranges.h>

#include <functional>

#include "core/spelling.h"
#include "core/json_read.h"
#include "nn/activations.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/flatten.h"
#include "nn/json_fields.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/merge.h"
#include "nn/pooling.h"
#include "nn/sequential.h"
#include "nn/transformer.h"

namespace gpuml::nn {
namespace {

using Parser = std::function<std::unique_ptr<Module>(JsonFields&)>;

std::unique_ptr<Module> parse_sequential(JsonFields& f) {
  auto seq = std::make_unique<Sequential>();
  const nlohmann::json& layers = f.required_array("layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    NamedLayer child = layer_from_json(layers[i], fmt::format("{}: layer {}", f.where(), i));
    seq->add(child.name.empty() ? std::to_string(i) : child.name, std::move(child.module), std::move(child.inputs));
  }
  return seq;
}

// The table: type name -> parser of that layer's fields (PyTorch's argument names and defaults).
const std::vector<std::pair<std::string, Parser>>& layer_table() {
  static const std::vector<std::pair<std::string, Parser>> table = {
      {"Linear",
       [](JsonFields& f) {
         int64_t in = f.required_int("in_features", 1);
         int64_t out = f.required_int("out_features", 1);
         bool bias = f.optional_bool("bias", true);
         double init_std = f.optional_number("init_std", 0.0, 0.0, 1e6);
         return std::make_unique<Linear>(in, out, bias, init_std, f.optional_string("tied_to", ""));
       }},
      {"Conv2d",
       [](JsonFields& f) {
         int64_t in = f.required_int("in_channels", 1);
         int64_t out = f.required_int("out_channels", 1);
         int64_t kernel = f.required_int("kernel_size", 1);
         int64_t stride = f.optional_int("stride", 1, 1);
         int64_t padding = f.optional_int("padding", 0, 0);
         int64_t dilation = f.optional_int("dilation", 1, 1);
         int64_t groups = f.optional_int("groups", 1, 1);
         bool bias = f.optional_bool("bias", true);
         GPUML_CHECK(in % groups == 0 && out % groups == 0,
                     "{}: in_channels {} and out_channels {} must be divisible by groups {}",
                     f.where(), in, out, groups);
         return std::make_unique<Conv2d>(in, out, kernel, stride, padding, dilation, groups, bias);
       }},
      {"MaxPool2d",
       [](JsonFields& f) {
         int64_t kernel = f.required_int("kernel_size", 1);
         int64_t stride = f.optional_int("stride", kernel, 1);
         int64_t padding = f.optional_int("padding", 0, 0);
         GPUML_CHECK(padding <= kernel / 2,
                     "{}: field 'padding' ({}) must be at most half of kernel_size ({})", f.where(),
                     padding, kernel);
         return std::make_unique<MaxPool2d>(kernel, stride, padding);
       }},
      {"AvgPool2d",
       [](JsonFields& f) {
         int64_t kernel = f.required_int("kernel_size", 1);
         int64_t stride = f.optional_int("stride", kernel, 1);
         int64_t padding = f.optional_int("padding", 0, 0);
         bool include_pad = f.optional_bool("count_include_pad", true);
         GPUML_CHECK(padding <= kernel / 2,
                     "{}: field 'padding' ({}) must be at most half of kernel_size ({})", f.where(),
                     padding, kernel);
         return std::make_unique<AvgPool2d>(kernel, stride, padding, include_pad);
       }},
      {"BatchNorm1d",
       [](JsonFields& f) {
         int64_t n = f.required_int("num_features", 1);
         double eps = f.optional_number("eps", 1e-5, 1e-30, 1.0);
         return std::make_unique<BatchNorm1d>(n, eps, f.optional_number("momentum", 0.1, 0.0, 1.0));
       }},
      {"BatchNorm2d",
       [](JsonFields& f) {
         int64_t n = f.required_int("num_features", 1);
         double eps = f.optional_number("eps", 1e-5, 1e-30, 1.0);
         return std::make_unique<BatchNorm2d>(n, eps, f.optional_number("momentum", 0.1, 0.0, 1.0));
       }},
      {"LayerNorm",
       [](JsonFields& f) {
         Shape shape = f.required_int_list("normalized_shape", 1);
         double eps = f.optional_number("eps", 1e-5, 1e-30, 1.0);
         return std::make_unique<LayerNorm>(shape, eps,
                                            f.optional_bool("elementwise_affine", true));
       }},
      {"Dropout",
       [](JsonFields& f) {
         double p = f.optional_number("p", 0.5, 0.0, 1.0);
         GPUML_CHECK(p < 1.0, "{}: field 'p' must be < 1, got {}", f.where(), p);
         return std::make_unique<Dropout>(p);
       }},
      {"Embedding",
       [](JsonFields& f) {
         int64_t num = f.required_int("num_embeddings", 1);
         int64_t dim = f.required_int("embedding_dim", 1);
         return std::make_unique<Embedding>(num, dim, f.optional_number("init_std", 1.0, 1e-30, 1e6));
       }},
      {"PositionEmbedding",
       [](JsonFields& f) {
         int64_t num = f.required_int("num_embeddings", 1);
         int64_t dim = f.required_int("embedding_dim", 1);
         return std::make_unique<PositionEmbedding>(num, dim, f.optional_number("init_std", 0.02, 1e-30, 1e6));
       }},
      {"TransformerBlock",
       [](JsonFields& f) {
         int64_t c = f.required_int("n_embd", 1);
         int64_t heads = f.required_int("n_head", 1);
         double p = f.optional_number("dropout", 0.0, 0.0, 1.0);
         return std::make_unique<TransformerBlock>(c, heads, p, f.optional_int("n_layer", 1, 1));
       }},
      {"ReLU", [](JsonFields&) { return std::make_unique<ReLU>(); }},
      {"GELU",
       [](JsonFields& f) {
         return std::make_unique<GELU>(f.optional_choice("approximate", "none", {"none", "tanh"}) ==
                                       "tanh");
       }},
      {"Tanh", [](JsonFields&) { return std::make_unique<Tanh>(); }},
      {"Sigmoid", [](JsonFields&) { return std::make_unique<Sigmoid>(); }},
      {"Flatten", [](JsonFields&) { return std::make_unique<Flatten>(); }},
      {"Add", [](JsonFields&) { return std::make_unique<Add>(); }},
      {"Concat", [](JsonFields& f) { return std::make_unique<Concat>(f.optional_int("dim", 1, -64)); }},
      {"Sequential", parse_sequential},
  };
  return table;
}

}  // namespace

std::vector<std::string> known_layer_types() {
  std::vector<std::string> names;
  for (const auto& [name, parser] : layer_table()) names.push_back(name);
  return names;
}

NamedLayer layer_from_json(const nlohmann::json& spec, const std::string& where) {
  GPUML_CHECK(spec.is_object(), "{}: expected an object like {{\"type\": \"Linear\", ...}}, got {}",
              where, json_excerpt(spec));
  GPUML_CHECK(spec.contains("type"), "{}: missing field 'type' (known types: {})", where,
              fmt::join(known_layer_types(), ", "));
  const nlohmann::json& type = spec.at("type");
  GPUML_CHECK(type.is_string(), "{}: field 'type' must be a string, got {}", where, json_excerpt(type));
  std::string type_name = type.get<std::string>();
  const auto& table = layer_table();
  auto it = std::find_if(table.begin(), table.end(),
                         [&](const auto& row) { return row.first == type_name; });
  GPUML_CHECK(it != table.end(), "{}: unknown layer type '{}'{} (known types: {})", where, text_excerpt(type_name),
              did_you_mean(type_name, known_layer_types()), fmt::join(known_layer_types(), ", "));

  JsonFields fields(spec, fmt::format("{} ({})", where, type_name), {"type", "name", "inputs"});
  NamedLayer layer;
  if (spec.contains("name")) {
    const nlohmann::json& name = spec.at("name");
    GPUML_CHECK(name.is_string() && !name.get<std::string>().empty() &&
                    name.get<std::string>().find('.') == std::string::npos,
                "{}: field 'name' must be a non-empty string without '.', got {}", fields.where(),
                json_excerpt(name));
    layer.name = name.get<std::string>();
  }
  if (spec.contains("inputs")) {
    const nlohmann::json& inputs = spec.at("inputs");
    GPUML_CHECK(inputs.is_array() && !inputs.empty() && inputs.size() <= 64,
                "{}: field 'inputs' must be a list of layer names like [\"a\", \"b\"], got {}", fields.where(),
                json_excerpt(inputs));
    for (const nlohmann::json& in : inputs) {
      GPUML_CHECK(in.is_string() && !in.get<std::string>().empty(),
                  "{}: field 'inputs' must hold layer names (strings), got {}", fields.where(), json_excerpt(in));
      layer.inputs.push_back(in.get<std::string>());
    }
  }
  try {
    layer.module = it->second(fields);
  } catch (const Error& e) {
    // Constructor checks do not know the layer index; field checks already start with it.
    if (e.message().rfind(fields.where(), 0) == 0) throw;
    GPUML_FAIL(e.kind(), "{}: {}", fields.where(), e.message());
  }
  fields.finish();
  return layer;
}

}  // namespace gpuml::nn
