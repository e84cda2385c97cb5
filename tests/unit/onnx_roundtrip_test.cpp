// gpuml -> ONNX -> gpuml: exporting a model and importing the bytes gives back the same layers
// and bit-identical weights, for every layer type nn has (Embedding included, which the
// Fashion-MNIST checks in tests/tools cannot reach).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "interop/onnx_export.h"
#include "interop/onnx_import.h"

namespace gpuml {
namespace {

void expect_round_trip(const nn::Model& model) {
  std::map<std::string, Tensor> init = model.init_values(std::random_device{}());
  NamedTensors weights(init.begin(), init.end());
  std::string bytes = interop::onnx_model_bytes(model, weights);
  interop::ImportedModel back = interop::import_onnx_bytes(bytes, {}, "round trip");
  // Layer types and settings survive; the importer may name layers by index where gpuml named them.
  nlohmann::json want = model.to_json(), got = back.model.to_json();
  ASSERT_EQ(want["layers"].size(), got["layers"].size() + std::count_if(want["layers"].begin(), want["layers"].end(),
                                                                       [](const auto& l) { return l["type"] == "Dropout"; }));
  std::map<std::string, Tensor> got_weights(back.weights.begin(), back.weights.end());
  for (const auto& [name, t] : weights) {
    if (name.ends_with("num_batches_tracked")) continue;  // ONNX has no such tensor; import starts at 0
    auto it = got_weights.find(name);
    ASSERT_NE(it, got_weights.end()) << name << " in " << got.dump();
    EXPECT_EQ(it->second.shape(), t.shape()) << name;
    EXPECT_EQ(it->second.to_doubles(), t.to_doubles()) << name;
  }
}

TEST(OnnxRoundTrip, Presets) {
  expect_round_trip(nn::Model::preset("mlp"));
  expect_round_trip(nn::Model::preset("cnn"));
}

TEST(OnnxRoundTrip, EveryLayerType) {
  expect_round_trip(nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [2, 9, 9], "layers": [
      {"type": "Conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1, "groups": 2},
      {"type": "BatchNorm2d", "num_features": 4, "eps": 0.001},
      {"type": "GELU"},
      {"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "padding": 1},
      {"type": "AvgPool2d", "kernel_size": 2, "stride": 1, "count_include_pad": false},
      {"type": "LayerNorm", "normalized_shape": [4, 4]},
      {"type": "Flatten"},
      {"type": "Dropout", "p": 0.5},
      {"type": "Linear", "in_features": 64, "out_features": 6, "name": "fc"},
      {"type": "BatchNorm1d", "num_features": 6},
      {"type": "GELU", "approximate": "tanh"},
      {"type": "Tanh"}, {"type": "Sigmoid"}, {"type": "ReLU"},
      {"type": "Linear", "in_features": 6, "out_features": 3, "bias": false}]})")));
}

// Branches: a residual Add and a Concat of two branches come back as the same merge layers.
TEST(OnnxRoundTrip, BranchedModel) {
  nn::Model model = nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [2, 8, 8], "layers": [
      {"type": "Conv2d", "name": "c1", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
      {"type": "ReLU", "name": "r1"},
      {"type": "Conv2d", "name": "c2", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
      {"type": "Add", "name": "sum", "inputs": ["r1", "c2"]},
      {"type": "Conv2d", "name": "side", "in_channels": 4, "out_channels": 2, "kernel_size": 1, "inputs": ["r1"]},
      {"type": "Concat", "inputs": ["sum", "side"]},
      {"type": "Flatten"},
      {"type": "Linear", "in_features": 384, "out_features": 3, "name": "fc"}]})"));
  expect_round_trip(model);
  std::map<std::string, Tensor> init = model.init_values(std::random_device{}());
  interop::ImportedModel back =
      interop::import_onnx_bytes(interop::onnx_model_bytes(model, NamedTensors(init.begin(), init.end())), {}, "rt");
  const nlohmann::json layers = back.model.to_json()["layers"];
  ASSERT_EQ(layers.size(), 8u) << layers.dump();
  EXPECT_EQ(layers[3]["type"], "Add");
  EXPECT_EQ(layers[3]["inputs"], (nlohmann::json{"1", "c2"})) << layers.dump();
  EXPECT_EQ(layers[4]["inputs"], (nlohmann::json{"1"})) << layers.dump();
  EXPECT_EQ(layers[5]["type"], "Concat");
  EXPECT_EQ(layers[5]["inputs"], (nlohmann::json{"3", "side"})) << layers.dump();
  EXPECT_EQ(layers[6].count("inputs"), 0u) << layers.dump();
}

TEST(OnnxRoundTrip, Embedding) {
  // Float inputs holding token ids: the export casts them (Cast -> Gather), the import folds that
  // back into the Embedding layer.
  expect_round_trip(nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [5], "layers": [
      {"type": "Embedding", "num_embeddings": 11, "embedding_dim": 3, "name": "tok"},
      {"type": "Flatten"},
      {"type": "Linear", "in_features": 15, "out_features": 4}]})")));
}

TEST(OnnxRoundTrip, MissingWeightIsNamed) {
  nn::Model model = nn::Model::preset("mlp");
  std::map<std::string, Tensor> init = model.init_values(1);
  init.erase("3.bias");
  try {
    interop::onnx_model_bytes(model, NamedTensors(init.begin(), init.end()));
    FAIL() << "exported without 3.bias";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("no weight named '3.bias'"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace gpuml
