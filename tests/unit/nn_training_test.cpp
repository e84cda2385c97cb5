// Modules are differentiable end to end: small models trained by hand-written SGD on gradients()
// lower their loss, including one with Conv2d, BatchNorm (running stats fed back), MaxPool2d,
// Dropout and Linear.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "graph/autodiff.h"
#include "nn/model.h"
#include "nn_test_util.h"

namespace gpuml::nn {
namespace {

using testing::random_tensor;

// One training step graph for `model`: outputs loss, then one gradient per trainable param (in
// param_infos order), then the buffer updates.
struct TrainStep {
  Graph g;
  std::vector<std::string> trainable, buffers;
  std::unique_ptr<Executor> executor;

  TrainStep(const Model& model, const Shape& x_shape, int64_t batch, uint64_t dropout_seed) {
    Sym x = g.input("x", {x_shape, DType::f32});
    Sym y = g.input("y", {{batch}, DType::i64});
    std::map<std::string, Sym> leaves = declare_params(g, model.param_infos());
    ForwardContext ctx{g, true, [&](const std::string& n) { return leaves.at(n); }};
    ctx.dropout_seed = dropout_seed;
    Sym loss = cross_entropy(model.forward(x, ctx), y);
    std::vector<Sym> wrt;
    for (const ParamInfo& p : model.param_infos())
      if (p.trainable) {
        trainable.push_back(p.name);
        wrt.push_back(leaves.at(p.name));
      }
    std::vector<Sym> outputs{loss};
    for (Sym grad : gradients(g, loss, wrt)) outputs.push_back(grad);
    for (const auto& [name, sym] : ctx.buffer_updates) {
      buffers.push_back(name);
      outputs.push_back(sym);
    }
    executor = std::make_unique<Executor>(plan_graph(g, outputs));
  }

  // Runs one step and applies w -= lr * grad to `values`; returns the loss before the update.
  double sgd(std::map<std::string, Tensor>& values, const Tensor& x, const Tensor& y, double lr) {
    std::map<std::string, Tensor> feeds = values;
    feeds["x"] = x;
    feeds["y"] = y;
    std::vector<Tensor> out = executor->run(feeds);
    for (size_t i = 0; i < trainable.size(); ++i) {
      std::vector<double> w = values.at(trainable[i]).to_doubles(), grad = out[i + 1].to_doubles();
      for (size_t k = 0; k < w.size(); ++k) w[k] -= lr * grad[k];
      values[trainable[i]] = Tensor::from_values(values.at(trainable[i]).shape(), w, DType::f32);
    }
    for (size_t i = 0; i < buffers.size(); ++i) values[buffers[i]] = out[1 + trainable.size() + i];
    return out[0].item_as_double(0);
  }
};

// Labels from a fixed rule on the inputs, so the model has something to learn.
Tensor labels_from(const Tensor& x, int64_t classes) {
  int64_t n = x.dim(0), per = x.numel() / n;
  std::vector<double> v = x.to_doubles(), y;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (v[i * per + c] > v[i * per + best]) best = c;
    y.push_back(static_cast<double>(best));
  }
  return Tensor::from_values({n}, y, DType::i64);
}

TEST(NnTraining, TinyMlpLossFallsOverTwentySgdSteps) {
  Model m = Model::from_json(nlohmann::json::parse(R"({"input_shape": [8], "layers": [
      {"type": "Linear", "in_features": 8, "out_features": 16}, {"type": "Tanh"},
      {"type": "Linear", "in_features": 16, "out_features": 3}]})"));
  std::mt19937_64 rng(21);
  Tensor x = random_tensor({32, 8}, rng);
  Tensor y = labels_from(x, 3);
  auto values = m.init_values(5);
  TrainStep step(m, {32, 8}, 32, 0);
  std::vector<double> losses;
  for (int i = 0; i < 20; ++i) losses.push_back(step.sgd(values, x, y, 0.5));
  EXPECT_LT(losses.back(), 0.8 * losses.front())
      << "first " << losses.front() << " last " << losses.back();
  for (size_t i = 1; i < losses.size(); ++i) EXPECT_TRUE(std::isfinite(losses[i]));
}

TEST(NnTraining, ConvBatchNormPoolDropoutModelLearnsAndTracksRunningStats) {
  Model m = Model::from_json(nlohmann::json::parse(R"({"input_shape": [2, 6, 6], "layers": [
      {"type": "Conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
      {"type": "BatchNorm2d", "num_features": 4}, {"type": "ReLU"},
      {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Flatten"}, {"type": "Dropout", "p": 0.1},
      {"type": "Linear", "in_features": 36, "out_features": 8, "name": "fc1"}, {"type": "BatchNorm1d", "num_features": 8},
      {"type": "GELU"}, {"type": "LayerNorm", "normalized_shape": 8},
      {"type": "Linear", "in_features": 8, "out_features": 3}]})"));
  std::mt19937_64 rng(22);
  Tensor x = random_tensor({16, 2, 6, 6}, rng);
  Tensor y = labels_from(x, 3);
  auto values = m.init_values(9);
  TrainStep step(m, {16, 2, 6, 6}, 16, 42);
  EXPECT_EQ(step.buffers.size(), 6u);
  std::vector<double> losses;
  for (int i = 0; i < 30; ++i) losses.push_back(step.sgd(values, x, y, 0.2));
  EXPECT_LT(losses.back(), 0.8 * losses.front())
      << "first " << losses.front() << " last " << losses.back();
  EXPECT_EQ(values.at("1.num_batches_tracked").item_as_double(0), 30.0);
  EXPECT_EQ(values.at("7.num_batches_tracked").item_as_double(0), 30.0);
  // Running stats moved away from their (0, 1) start.
  std::vector<double> rm = values.at("1.running_mean").to_doubles();
  double moved = 0;
  for (double v : rm) moved += std::abs(v);
  EXPECT_GT(moved, 1e-3);
}

}  // namespace
}  // namespace gpuml::nn
