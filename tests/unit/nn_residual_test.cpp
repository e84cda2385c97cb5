// Models with branches (nn/merge.h): a layer's "inputs" names earlier outputs, Add and Concat
// combine them. Checked against the same computation built from the separate layers, trained
// end to end from JSON, and refused clearly when the wiring is wrong.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "nn/conv2d.h"
#include "nn/model.h"
#include "nn_test_util.h"
#include "train/trainer.h"

namespace gpuml::nn {
namespace {

using testing::random_tensor;
using testing::run_forward;

const char* kBranches = R"(
  {"type": "Conv2d", "name": "c1", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
  {"type": "ReLU", "name": "r1"},
  {"type": "Conv2d", "name": "c2", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1})";

// Two convolutions with a residual add, out = r1 + c2(r1) with r1 = relu(c1(x)), then a classifier.
std::string residual_json(const std::string& merge = R"({"type": "Add", "name": "sum", "inputs": ["r1", "c2"]})",
                          int64_t head_in = 256) {
  return fmt::format(R"({{"input_shape": [1, 8, 8], "layers": [{}, {}, {{"type": "ReLU"}}, {{"type": "Flatten"}},
    {{"type": "Linear", "name": "head", "in_features": {}, "out_features": 4}}]}})",
                     kBranches, merge, head_in);
}

Model model_of(const std::string& json) { return Model::from_json(nlohmann::json::parse(json)); }

Tensor relu_of(const Tensor& t) {
  std::vector<double> v = t.to_doubles();
  for (double& x : v) x = std::max(x, 0.0);
  return Tensor::from_values(t.shape(), v, DType::f32);
}

TEST(NnResidual, AddAndConcatComputeWhatTheBranchesGive) {
  std::mt19937_64 rng(11);
  Model full = model_of(residual_json());
  std::map<std::string, Tensor> values = full.init_values(3);
  Tensor x = random_tensor({2, 1, 8, 8}, rng);
  // The branches by hand, each layer run on its own.
  Tensor r1 = relu_of(run_forward(Conv2d(1, 4, 3, 1, 1), x, values, false, "c1").y);
  Tensor c2 = run_forward(Conv2d(4, 4, 3, 1, 1), r1, values, false, "c2").y;
  std::vector<double> a = r1.to_doubles(), b = c2.to_doubles(), sum(a.size()), cat;
  for (size_t i = 0; i < a.size(); ++i) sum[i] = a[i] + b[i];
  for (int64_t n = 0; n < 2; ++n) {  // torch.cat([r1, c2], dim=1): per sample, r1's 256 values then c2's
    cat.insert(cat.end(), a.begin() + n * 256, a.begin() + (n + 1) * 256);
    cat.insert(cat.end(), b.begin() + n * 256, b.begin() + (n + 1) * 256);
  }
  // The same wiring as model JSON, up to the merge.
  auto upto = [&](const std::string& merge) {
    return model_of(fmt::format(R"({{"input_shape": [1, 8, 8], "layers": [{}, {}]}})", kBranches, merge));
  };
  Model added = upto(R"({"type": "Add", "inputs": ["r1", "c2"]})");
  testing::expect_close(run_forward(added.root(), x, values, false, "").y, {2, 4, 8, 8}, sum);
  Model joined = upto(R"({"type": "Concat", "dim": 1, "inputs": ["r1", "c2"]})");
  EXPECT_EQ(joined.output_shape(), (Shape{8, 8, 8}));
  testing::expect_close(run_forward(joined.root(), x, values, false, "").y, {2, 8, 8, 8}, cat);
}

TEST(NnResidual, JsonRoundTripsWithItsWiringAndPyTorchNames) {
  Model m = model_of(residual_json());
  Model back = Model::from_json(m.to_json());
  EXPECT_EQ(back.to_json(), m.to_json());
  EXPECT_EQ(back.root().children()[3].inputs, (std::vector<std::string>{"r1", "c2"}));
  std::vector<std::string> names;
  for (const ParamInfo& p : m.param_infos()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"c1.weight", "c1.bias", "c2.weight", "c2.bias", "head.weight",
                                             "head.bias"}));
  // A skip connection from the model's input: a one-input layer may name any earlier output.
  Model skip = model_of(R"({"input_shape": [4], "layers": [{"type": "Linear", "in_features": 4, "out_features": 4},
    {"type": "Tanh"}, {"type": "Add", "inputs": ["input", "1"]}]})");
  EXPECT_EQ(skip.output_shape(), (Shape{4}));
}

void expect_refused(const std::string& json, const std::string& fragment) {
  try {
    model_of(json);
    FAIL() << "accepted: " << json;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(NnResidual, WrongWiringIsRefusedNamingTheLayer) {
  expect_refused(residual_json(R"({"type": "Add", "inputs": ["r1", "c3"]})"),
                 "layer 3: Add '3': input 'c3' is not an earlier layer's name (or 'input')");
  expect_refused(residual_json(R"({"type": "Add", "inputs": ["r1"]})"),
                 "layer 3: Add '3' combines two or more earlier outputs: give it \"inputs\", e.g. [\"a\", \"b\"] "
                 "(got 1 input)");
  expect_refused(residual_json(R"({"type": "Add"})"), "(got 0 inputs)");
  expect_refused(residual_json(R"({"type": "Add", "inputs": ["input", "c2"]})"),
                 "Add: input 1 has shape (4, 8, 8) but input 0 has (1, 8, 8)");
  expect_refused(residual_json(R"({"type": "Concat", "dim": 2, "inputs": ["input", "c2"]})"),
                 "only dim 2 may differ");
  expect_refused(residual_json(R"({"type": "Add", "inputs": "r1"})"), "field 'inputs' must be a list of layer names");
  expect_refused(residual_json(R"({"type": "ReLU", "inputs": ["r1", "c2"]})"), "takes one input, got 2");
}

TEST(NnResidual, ResidualModelTrainsFromJson) {
  // Bright top half: class 0..3 by which quadrant holds the bright square.
  const int64_t n = 512;
  Tensor x = Tensor::empty({n, 1, 8, 8}, DType::f32), y = Tensor::empty({n}, DType::i64);
  std::mt19937_64 rng(5);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t q = static_cast<int64_t>(rng() % 4);
    y.data<int64_t>()[i] = q;
    for (int64_t p = 0; p < 64; ++p) {
      const int64_t r = p / 8, c = p % 8;
      const bool bright = (r / 4) * 2 + c / 4 == q;
      x.data<float>()[i * 64 + p] = (bright ? 1.0f : 0.0f) + 0.3f * std::uniform_real_distribution<float>(-1, 1)(rng);
    }
  }
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch_size = 32;
  cfg.device = "cpu";
  TrainerInputs in{.model = model_of(residual_json()), .train = data::InMemoryDataset(x, y), .eval = std::nullopt};
  Trainer trainer(cfg, std::move(in));
  TrainResult r = trainer.fit();
  EXPECT_GT(r.train_metric, 0.9) << "a bright quadrant is easy for two convolutions";
}

}  // namespace
}  // namespace gpuml::nn
