// Models: preset state_dict names/shapes as PyTorch prints them, parameter totals, init, JSON round
// trip and the errors a bad model file gets.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/philox.h"
#include "nn/model.h"
#include "nn/summary.h"

namespace gpuml::nn {
namespace {

using nlohmann::json;

struct Expected {
  std::string name;
  Shape shape;
};

void expect_state_dict(const Model& m, const std::vector<Expected>& expected) {
  const auto& infos = m.param_infos();
  ASSERT_EQ(infos.size(), expected.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    EXPECT_EQ(infos[i].name, expected[i].name) << "entry " << i;
    EXPECT_EQ(infos[i].shape, expected[i].shape) << infos[i].name;
    EXPECT_TRUE(infos[i].trainable);
    EXPECT_EQ(infos[i].dtype, DType::f32);
  }
}

// The lists are what tests/tools/torch_state_dict.py prints with PyTorch 1.13.
TEST(NnModel, MlpPresetMatchesTorchStateDict) {
  Model m = Model::preset("mlp");
  expect_state_dict(m, {{"1.weight", {256, 784}},
                        {"1.bias", {256}},
                        {"3.weight", {128, 256}},
                        {"3.bias", {128}},
                        {"5.weight", {10, 128}},
                        {"5.bias", {10}}});
  EXPECT_EQ(m.parameter_count(), 235146);
  EXPECT_EQ(m.buffer_count(), 0);
  EXPECT_EQ(m.num_classes(), 10);
  EXPECT_EQ(m.input_shape(), (Shape{1, 28, 28}));
  // 2 * MACs + bias adds + ReLUs.
  EXPECT_EQ(m.flops_per_sample(), 2 * 235146 - (256 + 128 + 10) + 256 + 128);
}

TEST(NnModel, CnnPresetMatchesTorchStateDict) {
  Model m = Model::preset("cnn");
  expect_state_dict(m, {{"0.weight", {32, 1, 3, 3}},
                        {"0.bias", {32}},
                        {"3.weight", {64, 32, 3, 3}},
                        {"3.bias", {64}},
                        {"7.weight", {128, 3136}},
                        {"7.bias", {128}},
                        {"9.weight", {10, 128}},
                        {"9.bias", {10}}});
  EXPECT_EQ(m.parameter_count(), 421642);
  EXPECT_EQ(m.output_shape(), (Shape{10}));
  EXPECT_EQ(m.root().child_output_shapes(m.input_shape())[6], (Shape{3136}));
  EXPECT_THROW(Model::preset("resnet"), Error);
}

TEST(NnModel, BatchNormBuffersFollowTorchOrder) {
  Model m = Model::from_json(json::parse(R"({"input_shape": [3, 8, 8], "layers": [
      {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "bias": false},
      {"type": "BatchNorm2d", "num_features": 4}, {"type": "ReLU"}, {"type": "Flatten"},
      {"type": "Linear", "in_features": 144, "out_features": 5, "name": "head"}]})"));
  std::vector<std::string> names;
  for (const ParamInfo& p : m.param_infos()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "1.weight", "1.bias", "1.running_mean",
                                             "1.running_var", "1.num_batches_tracked",
                                             "head.weight", "head.bias"}));
  const ParamInfo& tracked = m.param_infos()[5];
  EXPECT_FALSE(tracked.trainable);
  EXPECT_EQ(tracked.dtype, DType::i64);
  EXPECT_EQ(tracked.shape, Shape{});
  EXPECT_FALSE(m.param_infos()[3].trainable);
  EXPECT_TRUE(m.param_infos()[1].trainable);
  EXPECT_EQ(m.parameter_count(), 4 * 3 * 9 + 8 + 144 * 5 + 5);
  EXPECT_EQ(m.buffer_count(), 9);

  auto values = m.init_values(3);
  EXPECT_EQ(values.at("1.weight").to_doubles(), std::vector<double>(4, 1.0));
  EXPECT_EQ(values.at("1.bias").to_doubles(), std::vector<double>(4, 0.0));
  EXPECT_EQ(values.at("1.running_mean").to_doubles(), std::vector<double>(4, 0.0));
  EXPECT_EQ(values.at("1.running_var").to_doubles(), std::vector<double>(4, 1.0));
  EXPECT_EQ(values.at("1.num_batches_tracked").dtype(), DType::i64);
  EXPECT_EQ(values.at("1.num_batches_tracked").item_as_double(0), 0.0);
}

TEST(NnModel, InitFollowsTorchBoundsAndIsDeterministicPerSeed) {
  Model m = Model::preset("cnn");
  auto a = m.init_values(7), b = m.init_values(7), c = m.init_values(8);
  ASSERT_EQ(a.size(), m.param_infos().size());
  const std::map<std::string, int64_t> fan_in = {{"0", 9}, {"3", 32 * 9}, {"7", 3136}, {"9", 128}};
  for (const ParamInfo& p : m.param_infos()) {
    const Tensor& t = a.at(p.name);
    ASSERT_EQ(t.shape(), p.shape);
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in.at(p.name.substr(0, 1))));
    std::vector<double> v = t.to_doubles(), vb = b.at(p.name).to_doubles(),
                        vc = c.at(p.name).to_doubles();
    double lo = 1e9, hi = -1e9, mean = 0;
    for (double x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      mean += x / static_cast<double>(v.size());
    }
    EXPECT_GE(lo, -bound) << p.name;
    EXPECT_LT(hi, bound) << p.name;
    // Spread over the interval, not a constant: the extremes come near the bounds.
    if (v.size() >= 128) {
      EXPECT_LT(lo, -0.8 * bound) << p.name;
      EXPECT_GT(hi, 0.8 * bound) << p.name;
      EXPECT_NEAR(mean, 0.0, 0.2 * bound) << p.name;
    }
    EXPECT_EQ(v, vb) << p.name << ": same seed must give the same values";
    EXPECT_NE(v, vc) << p.name << ": another seed must give other values";
  }
}

TEST(NnModel, EachStateDictEntryDrawsFromItsOwnPhiloxStream) {
  ParamInitializer init(5);
  init.uniform("a", {100}, 1.0);
  init.constant("c", {3}, 0.0);
  init.uniform("b", {100}, 1.0);
  auto values = init.take();
  std::vector<double> a = values.at("a").to_doubles(), b = values.at("b").to_doubles();
  int same = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(a[i], static_cast<float>(-1.0 + 2.0 * philox_uniform(5, 0, i)));
    EXPECT_EQ(b[i],
              static_cast<float>(-1.0 + 2.0 * philox_uniform(5, uint64_t{2} << 40, i)));  // entry 2
    same += a[i] == b[i];
  }
  EXPECT_LT(same, 3);
}

TEST(NnModel, EmbeddingInitIsStandardNormal) {
  Model m = Model::from_json(json::parse(R"({"input_shape": [5], "layers": [
      {"type": "Embedding", "num_embeddings": 100, "embedding_dim": 50}]})"));
  std::vector<double> v = m.init_values(1).at("0.weight").to_doubles();
  double mean = 0, sq = 0;
  for (double x : v) mean += x / 5000;
  for (double x : v) sq += (x - mean) * (x - mean) / 5000;
  EXPECT_NEAR(mean, 0.0, 0.05);
  EXPECT_NEAR(std::sqrt(sq), 1.0, 0.05);
  EXPECT_EQ(m.output_shape(), (Shape{5, 50}));
  EXPECT_EQ(m.num_classes(), 0);
}

TEST(NnModel, JsonRoundTripKeepsEveryField) {
  json spec = json::parse(R"({"input_shape": [3, 16, 16], "layers": [
      {"type": "Conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1,
       "dilation": 1, "groups": 1, "bias": false},
      {"type": "BatchNorm2d", "num_features": 8, "eps": 0.001, "momentum": 0.2},
      {"type": "GELU", "approximate": "tanh"},
      {"type": "AvgPool2d", "kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": false},
      {"type": "MaxPool2d", "kernel_size": 2},
      {"type": "Dropout", "p": 0.25},
      {"type": "Flatten"},
      {"type": "Linear", "in_features": 128, "out_features": 32, "name": "fc1"},
      {"type": "LayerNorm", "normalized_shape": [32], "eps": 0.0001},
      {"type": "Tanh"}, {"type": "Sigmoid"},
      {"type": "Linear", "in_features": 32, "out_features": 4, "bias": false}]})");
  Model m = Model::from_json(spec);
  json out = m.to_json();
  Model again = Model::from_json(out);
  EXPECT_EQ(again.to_json(), out);
  ASSERT_EQ(again.param_infos().size(), m.param_infos().size());
  for (size_t i = 0; i < m.param_infos().size(); ++i)
    EXPECT_EQ(again.param_infos()[i].name, m.param_infos()[i].name);
  EXPECT_EQ(out["layers"][0]["stride"], 2);
  EXPECT_EQ(out["layers"][0]["bias"], false);
  EXPECT_EQ(out["layers"][1]["momentum"], 0.2);
  EXPECT_EQ(out["layers"][2]["approximate"], "tanh");
  EXPECT_EQ(out["layers"][3]["count_include_pad"], false);
  EXPECT_EQ(out["layers"][7]["name"], "fc1");
  EXPECT_EQ(out["layers"][8]["eps"], 0.0001);
  EXPECT_EQ(m.param_infos().back().name, "11.weight");
  EXPECT_EQ(Model::preset("cnn").to_json(),
            Model::from_json(Model::preset("cnn").to_json()).to_json());
}

// Each bad spec must be rejected as Invalid with a message holding every fragment.
void expect_rejected(const std::string& text, const std::vector<std::string>& fragments) {
  json spec = json::parse(text);
  try {
    Model::from_json(spec);
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Invalid) << e.message();
    for (const std::string& f : fragments)
      EXPECT_NE(e.message().find(f), std::string::npos) << e.message();
  }
}

TEST(NnModel, InvalidJsonNamesLayerAndField) {
  const std::string in = R"("input_shape": [1, 28, 28], )";
  expect_rejected(R"({"layers": [{"type": "ReLU"}]})", {"missing field 'input_shape'"});
  expect_rejected(R"({"input_shape": [], "layers": [{"type": "ReLU"}]})",
                  {"input_shape", "must not be empty"});
  expect_rejected(R"({"input_shape": [1, 0], "layers": [{"type": "ReLU"}]})",
                  {"input_shape", ">= 1"});
  expect_rejected(R"({"input_shape": [1], "layers": []})", {"layers", "must not be empty"});
  expect_rejected("{" + in + R"("layers": [{"type": "ReLU"}], "optimizer": "adam"})",
                  {"unknown field 'optimizer'"});
  expect_rejected("{" + in + R"("layers": [{"type": "Flatten"}, {"type": "Conv3d"}]})",
                  {"layer 1", "unknown layer type 'Conv3d'", "Linear", "Conv2d", "BatchNorm2d"});
  expect_rejected("{" + in + R"("layers": [{"in_features": 3}]})",
                  {"layer 0", "missing field 'type'"});
  expect_rejected(
      "{" + in + R"("layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784}]})",
      {"layer 1 (Linear)", "missing field 'out_features'"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": -3}]})",
      {"layer 1 (Linear)", "'out_features'", ">= 1", "-3"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784.5, "out_features": 3}]})",
      {"layer 1 (Linear)", "'in_features'", "integer"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": "784", "out_features": 3}]})",
      {"layer 1 (Linear)", "'in_features'", "integer"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernal_size": 3}]})",
      {"layer 0 (Conv2d)", "kernel_size"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "paddding": 1}]})",
      {"layer 0 (Conv2d)", "unknown field 'paddding'", "padding"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Conv2d", "in_channels": 2, "out_channels": 8, "kernel_size": 3}]})",
      {"layer 0 (Conv2d)", "expects 2 input channels, gets 1"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "groups": 3}]})",
      {"layer 0 (Conv2d)", "divisible by groups 3"});
  expect_rejected(
      "{" + in + R"("layers": [{"type": "MaxPool2d", "kernel_size": 2, "padding": 2}]})",
      {"layer 0 (MaxPool2d)", "'padding'"});
  expect_rejected("{" + in + R"("layers": [{"type": "Dropout", "p": 1.0}]})",
                  {"layer 0 (Dropout)", "'p'"});
  expect_rejected("{" + in + R"("layers": [{"type": "GELU", "approximate": "fast"}]})",
                  {"layer 0 (GELU)", "'approximate'", "none, tanh"});
  expect_rejected("{" + in + R"("layers": [{"type": "ReLU", "inplace": true}]})",
                  {"layer 0 (ReLU)", "unknown field 'inplace'"});
  expect_rejected(
      "{" + in + R"("layers": [{"type": "BatchNorm2d", "num_features": 1, "momentum": 2}]})",
      {"layer 0 (BatchNorm2d)", "'momentum'"});
  expect_rejected(
      "{" + in + R"("layers": [{"type": "ReLU", "name": "a"}, {"type": "Tanh", "name": "a"}]})",
      {"layer 1 (Tanh)", "'a'"});
  expect_rejected("{" + in + R"("layers": [{"type": "ReLU", "name": "a.b"}]})",
                  {"layer 0 (ReLU)", "'name'"});
  expect_rejected("{" + in + R"("layers": ["ReLU"]})", {"layer 0", "object"});
  // Shapes that do not chain: the cnn preset with a wrong fc1.
  json cnn = Model::preset("cnn").to_json();
  cnn["layers"][7]["in_features"] = 100;
  expect_rejected(cnn.dump(), {"layer 7 (Linear): expects 100 input features, gets 3136"});
  expect_rejected(
      "{" + in +
          R"("layers": [{"type": "Flatten"}, {"type": "BatchNorm2d", "num_features": 784}]})",
      {"layer 1 (BatchNorm2d)", "(C, H, W)"});
  expect_rejected("{" + in + R"("layers": [{"type": "LayerNorm", "normalized_shape": [27]}]})",
                  {"layer 0 (LayerNorm)", "normalized_shape"});
  expect_rejected(
      R"({"input_shape": [1, 2, 2], "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 5}]})",
      {"layer 0 (Conv2d)", "smaller than the kernel"});
}

TEST(NnModel, FileErrorsNameThePath) {
  auto dir =
      std::filesystem::temp_directory_path() / ("gpuml_nn_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string missing = (dir / "missing.json").string();
  try {
    Model::from_json_file(missing);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.message().find(missing), std::string::npos);
  }
  std::string broken = (dir / "broken.json").string();
  std::ofstream(broken) << R"({"input_shape": [1, 28, 28], "layers": [)";
  try {
    Model::from_json_file(broken);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Invalid);
    EXPECT_NE(e.message().find(broken), std::string::npos);
  }
  std::string bad = (dir / "bad.json").string();
  std::ofstream(bad) << R"({"input_shape": [1, 28, 28], "layers": [{"type": "Linear"}]})";
  try {
    Model::from_json_file(bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(bad), std::string::npos);
    EXPECT_NE(e.message().find("layer 0 (Linear)"), std::string::npos) << e.message();
  }
  std::string good = (dir / "good.json").string();
  std::ofstream(good) << Model::preset("mlp").to_json().dump(2);
  EXPECT_EQ(Model::from_json_file(good).parameter_count(), 235146);
  std::filesystem::remove_all(dir);
}

TEST(NnModel, SummaryListsLayersAndTotals) {
  std::string s = model_summary(Model::preset("cnn"), 128, size_t{3} << 20);
  for (const char* fragment :
       {"0: Conv2d(1 -> 32, 3x3, pad 1)", "(128, 32, 28, 28)", "320", "2: MaxPool2d(2x2)",
        "(128, 64, 7, 7)", "6: Flatten", "(128, 3136)", "7: Linear(3136 -> 128)", "401,536",
        "9: Linear(128 -> 10)", "(128, 10)", "Total params: 421,642", "Trainable params: 421,642",
        "Parameter memory: 1.61 MiB", "FLOPs per sample", "Planned peak memory: 3.00 MiB"})
    EXPECT_NE(s.find(fragment), std::string::npos) << "missing '" << fragment << "' in\n" << s;
  std::string mlp = model_summary(Model::preset("mlp"), 1);
  EXPECT_NE(mlp.find("Total params: 235,146"), std::string::npos) << mlp;
  EXPECT_EQ(mlp.find("Planned peak"), std::string::npos);
  EXPECT_EQ(with_thousands(1234567), "1,234,567");
  EXPECT_EQ(with_thousands(999), "999");
  EXPECT_EQ(human_bytes(512), "512 B");
}

}  // namespace
}  // namespace gpuml::nn

namespace gpuml::nn {
namespace {

TEST(NnModel, ForwardChecksInputShapeAndParamShapes) {
  Model m = Model::preset("cnn");
  Graph g;
  Sym x = g.input("x", {{4, 784}, DType::f32});
  auto leaves = declare_params(g, m.param_infos());
  ForwardContext ctx{g, false, [&](const std::string& n) { return leaves.at(n); }};
  try {
    m.forward(x, ctx);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Shape);
    EXPECT_NE(e.message().find("(1, 28, 28)"), std::string::npos) << e.message();
  }
  // A value of the wrong shape fed for a parameter is caught while building.
  Graph g2;
  Sym x2 = g2.input("x", {{4, 1, 28, 28}, DType::f32});
  Sym wrong = g2.param("w", {{3, 3}, DType::f32});
  ForwardContext bad{g2, false, [&](const std::string&) { return wrong; }};
  try {
    m.forward(x2, bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("'0.weight'"), std::string::npos) << e.message();
  }
  Graph g3;
  Sym x3 = g3.input("x", {{4, 1, 28, 28}, DType::f32});
  auto leaves3 = declare_params(g3, m.param_infos());
  ForwardContext ok{g3, true, [&](const std::string& n) { return leaves3.at(n); }};
  EXPECT_EQ(m.forward(x3, ok).shape(), (Shape{4, 10}));
  EXPECT_TRUE(ok.buffer_updates.empty());
}

}  // namespace
}  // namespace gpuml::nn
