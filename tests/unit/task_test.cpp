// Tasks (train/task.h): --task auto's documented rule, and each task trained through the Trainer
// with its metric checked against the same figure computed here from predict()'s output, so a
// wrong loss, weight, ignore index or metric formula fails.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "nn/model.h"
#include "train/task.h"
#include "train/trainer.h"

namespace gpuml {
namespace {

nn::Model model_from(const std::string& json) { return nn::Model::from_json(nlohmann::json::parse(json)); }

nn::Model linear(int64_t in, int64_t out) {
  return model_from(fmt::format(R"({{"input_shape": [{0}], "layers": [{{"type": "Linear", "in_features": {0},
    "out_features": {1}}}]}})", in, out));
}

// Tokens (N, T) in 0..V-1 -> (N, T, V) logits: an embedding and a linear layer per position.
nn::Model bigram(int64_t t, int64_t v) {
  return model_from(fmt::format(R"({{"input_shape": [{0}], "layers": [
    {{"type": "Embedding", "num_embeddings": {1}, "embedding_dim": 16}},
    {{"type": "Linear", "in_features": 16, "out_features": {1}}}]}})", t, v));
}

Tensor features(int64_t n, int64_t f, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  Tensor x = Tensor::empty({n, f}, DType::f32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);
  return x;
}

Tensor values(const std::vector<double>& v, DType dtype) {
  return Tensor::from_values({static_cast<int64_t>(v.size())}, v, dtype);
}

TaskChoice choose(const std::string& requested, const Tensor& labels, const nn::Model& model) {
  Shape x_shape{labels.dim(0)};
  for (int64_t d : model.input_shape()) x_shape.push_back(d);
  Tensor x = Tensor::from_values(x_shape, std::vector<double>(static_cast<size_t>(numel(x_shape)), 0.0), DType::f32);
  return resolve_task(requested, -100, data::InMemoryDataset(x, labels), model);
}

TEST(Task, AutoFollowsTheDocumentedRule) {
  const nn::Model classes = linear(3, 4), one = linear(3, 1), vector = linear(3, 2);
  EXPECT_EQ(choose("auto", values({0, 3, 1}, DType::i64), classes).task.kind(), TaskKind::classification);
  // A float label column of whole numbers is still classification.
  TaskChoice whole = choose("auto", values({0, 3, 1}, DType::f32), classes);
  EXPECT_EQ(whole.task.kind(), TaskKind::classification);
  EXPECT_NE(whole.reason.find("whole numbers"), std::string::npos) << whole.reason;
  EXPECT_EQ(choose("auto", values({0.5, 3, 1}, DType::f32), classes).task.kind(), TaskKind::regression);
  EXPECT_EQ(choose("auto", values({-1, 3, 1}, DType::f32), classes).task.kind(), TaskKind::regression);
  // A model with one output cannot classify: integer targets are values to fit.
  EXPECT_EQ(choose("auto", values({0, 3, 1}, DType::i64), one).task.kind(), TaskKind::regression);
  Tensor pairs = Tensor::from_values({3, 2}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, DType::f32);
  EXPECT_EQ(choose("auto", pairs, vector).task.kind(), TaskKind::regression);
  Tensor tokens = Tensor::from_values({2, 5}, {1, 2, 3, 4, 5, 0, 1, 2, 3, 4}, DType::i64);
  TaskChoice lm = choose("auto", tokens, bigram(5, 7));
  EXPECT_EQ(lm.task.kind(), TaskKind::language_model);
  EXPECT_STREQ(lm.task.metric_name(), "perplexity");
  // Asked for by name, the task is the one asked for.
  TaskChoice asked = choose("regression", values({0, 3, 1}, DType::i64), classes);
  EXPECT_EQ(asked.task.kind(), TaskKind::regression);
  EXPECT_EQ(asked.reason, "--task");
  try {
    choose("regresion", values({0, 1, 1}, DType::i64), classes);
    ADD_FAILURE() << "an unknown task name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("did you mean 'regression'"), std::string::npos) << e.message();
  }
}

TEST(Task, PrepareRefusesTargetsThatDoNotFitTheModel) {
  auto prepare = [](TaskKind kind, const Tensor& labels, const nn::Model& model) {
    Shape x_shape{labels.dim(0)};
    for (int64_t d : model.input_shape()) x_shape.push_back(d);
    Tensor x = Tensor::from_values(x_shape, std::vector<double>(static_cast<size_t>(numel(x_shape)), 0.0), DType::f32);
    return Task(kind).prepare(data::InMemoryDataset(x, labels), model, "the arrays");
  };
  auto message = [&](TaskKind kind, const Tensor& labels, const nn::Model& model) -> std::string {
    try {
      prepare(kind, labels, model);
    } catch (const Error& e) {
      return e.message();
    }
    return "(accepted)";
  };
  EXPECT_NE(message(TaskKind::classification, values({0, 4}, DType::i64), linear(3, 4)).find("predicts 4 classes"),
            std::string::npos);
  EXPECT_NE(message(TaskKind::classification, values({0, -2}, DType::i64), linear(3, 4)).find("label -2 in row 1"),
            std::string::npos);
  EXPECT_NE(message(TaskKind::classification, values({0.5, 1}, DType::f32), linear(3, 4)).find("--task regression"),
            std::string::npos);
  EXPECT_NE(message(TaskKind::regression, values({0.5, 1}, DType::f32), linear(3, 4)).find("outputs 4"),
            std::string::npos);
  EXPECT_NE(message(TaskKind::regression, values({0.5, NAN}, DType::f32), linear(3, 1)).find("row 1"),
            std::string::npos);
  Tensor tokens = Tensor::from_values({1, 3}, {1, 9, -100}, DType::i64);
  EXPECT_NE(message(TaskKind::language_model, tokens, bigram(3, 7)).find("token 9 in row 0"), std::string::npos);
  // The ignore index is no token to check; a regression's (N,) targets take the output's shape.
  Tensor padded = Tensor::from_values({1, 3}, {1, 6, -100}, DType::i64);
  EXPECT_EQ(prepare(TaskKind::language_model, padded, bigram(3, 7)).labels().dtype(), DType::i64);
  data::InMemoryDataset r = prepare(TaskKind::regression, values({1, 2}, DType::i64), linear(3, 1));
  EXPECT_EQ(r.labels().shape(), (Shape{2, 1}));
  EXPECT_EQ(r.labels().dtype(), DType::f32);
}

TrainConfig quiet_config(int64_t epochs, double lr) {
  TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.batch_size = 32;
  cfg.device = "cpu";
  cfg.val_split = 0;
  cfg.optimizer.lr = lr;
  return cfg;
}

// y = x . w + 0.5 (+ a little noise): a linear layer fits it; the RMSE the Trainer reports is
// the one computed here from predict().
TEST(Task, RegressionTrainsAndReportsRmse) {
  std::mt19937_64 rng(11);
  const int64_t n = 512, f = 6;
  Tensor x = features(n, f, rng), y = Tensor::empty({n}, DType::f32);
  std::normal_distribution<float> noise(0.f, 0.05f);
  for (int64_t i = 0; i < n; ++i) {
    float s = 0.5f;
    for (int64_t j = 0; j < f; ++j) s += x.data<float>()[i * f + j] * static_cast<float>(j - 2);
    y.data<float>()[i] = s + noise(rng);
  }
  TrainerInputs in{.model = linear(f, 1), .train = data::InMemoryDataset(x, y), .eval = data::InMemoryDataset(x, y)};
  Trainer trainer(quiet_config(30, 0.05), std::move(in));
  EXPECT_EQ(trainer.task().kind(), TaskKind::regression);  // auto: one output per sample
  TrainResult r = trainer.fit();
  EXPECT_EQ(r.metric_name, "rmse");
  EXPECT_LT(r.eval_metric, 0.2) << "a linear target with noise 0.05";
  Tensor p = trainer.predict(x);
  ASSERT_EQ(p.shape(), (Shape{n, 1}));
  double se = 0;
  for (int64_t i = 0; i < n; ++i) se += std::pow(double(p.data<float>()[i]) - y.data<float>()[i], 2);
  EXPECT_NEAR(r.eval_metric, std::sqrt(se / n), 1e-4);
  EXPECT_NEAR(r.eval_loss, se / n, 1e-5);
}

// Next-token prediction on sequences where token t+1 = (token t + 1) mod V: a bigram model
// learns it, and positions marked with the ignore index count for nothing in loss or perplexity.
TEST(Task, LanguageModelSkipsTheIgnoreIndexAndReportsPerplexity) {
  const int64_t n = 256, t = 8, v = 11;
  std::mt19937_64 rng(5);
  Tensor x = Tensor::empty({n, t}, DType::i64), y = Tensor::empty({n, t}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    int64_t token = static_cast<int64_t>(rng() % v);
    for (int64_t j = 0; j < t; ++j) {
      x.data<int64_t>()[i * t + j] = token;
      token = (token + 1) % v;
      // The last two positions of every other row are padding.
      y.data<int64_t>()[i * t + j] = (i % 2 == 1 && j >= t - 2) ? -100 : token;
    }
  }
  TrainerInputs in{.model = bigram(t, v), .train = data::InMemoryDataset(x, y), .eval = data::InMemoryDataset(x, y)};
  Trainer trainer(quiet_config(8, 0.02), std::move(in));
  EXPECT_EQ(trainer.task().kind(), TaskKind::language_model);
  TrainResult r = trainer.fit();
  EXPECT_EQ(r.metric_name, "perplexity");
  EXPECT_LT(r.eval_metric, 1.5) << "the next token is a function of this one (chance: " << v << ")";
  Tensor p = trainer.predict(x);  // (N, T, V) probabilities
  ASSERT_EQ(p.shape(), (Shape{n, t, v}));
  double nll = 0;
  int64_t counted = 0;
  for (int64_t i = 0; i < n * t; ++i) {
    const int64_t target = y.data<int64_t>()[i];
    if (target == -100) continue;
    nll -= std::log(double(p.data<float>()[i * v + target]));
    ++counted;
  }
  EXPECT_EQ(counted, n * t - (n / 2) * 2);
  EXPECT_NEAR(r.eval_loss, nll / counted, 1e-4);
  EXPECT_NEAR(r.eval_metric, std::exp(nll / counted), 1e-4);
}

}  // namespace
}  // namespace gpuml
