// Weight decay on some parameters only (OptimizerConfig::weight_decay_params): which shapes
// decay, the (P,) mask ModelRunner builds from them, and one AdamW step of a real model checked
// against the step worked out by hand, parameter by parameter.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

#include "nn/model.h"
#include "optim/optimizer.h"
#include "optim_test_util.h"
#include "train/model_runner.h"
#include "train/resume.h"

namespace gpuml {
namespace {

using optim_test::expect_error;

optim::OptimizerConfig with_params(const std::string& which) {
  optim::OptimizerConfig c;
  c.kind = "adamw";
  c.weight_decay_params = which;
  return c;
}

TEST(OptimDecayParams, MatricesAreParametersOfTwoOrMoreDims) {
  const optim::OptimizerConfig all = with_params("all"), matrices = with_params("matrices");
  for (const Shape& s : {Shape{5, 7}, Shape{50, 16}, Shape{8, 3, 3, 3}}) {
    EXPECT_TRUE(optim::decays(all, s)) << shape_str(s);
    EXPECT_TRUE(optim::decays(matrices, s)) << shape_str(s);
  }
  for (const Shape& s : {Shape{7}, Shape{1}, Shape{}}) {
    EXPECT_TRUE(optim::decays(all, s)) << shape_str(s);
    EXPECT_FALSE(optim::decays(matrices, s)) << shape_str(s);
  }
}

TEST(OptimDecayParams, TheMaskCoversDecayedParametersAndNeitherOthersNorGaps) {
  // A (2, 3) weight at column 0, a (3,) bias at 64, a (4, 1) weight at 128; P = 192.
  const std::vector<optim::ParamColumns> columns = {{{2, 3}, 0}, {{3}, 64}, {{4, 1}, 128}};
  std::vector<double> matrices = optim::decay_mask(with_params("matrices"), columns, 192).to_doubles();
  std::vector<double> all = optim::decay_mask(with_params("all"), columns, 192, DType::f64).to_doubles();
  ASSERT_EQ(matrices.size(), 192u);
  for (int64_t i = 0; i < 192; ++i) {
    const bool in_weight = i < 6 || (i >= 128 && i < 132), in_bias = i >= 64 && i < 67;
    EXPECT_EQ(matrices[i], in_weight ? 1.0 : 0.0) << "column " << i;
    EXPECT_EQ(all[i], in_weight || in_bias ? 1.0 : 0.0) << "column " << i;
  }
  expect_error([&] { optim::decay_mask(with_params("all"), columns, 100); }, ErrorKind::Internal,
               {"decay_mask", "column 128"});
}

TEST(OptimDecayParams, AnUnknownChoiceIsRefusedWithTheNearestName) {
  expect_error([] { optim::validate(with_params("matrixes")); }, ErrorKind::Invalid,
               {"--weight-decay-params 'matrixes'", "all, matrices", "did you mean 'matrices'"});
  expect_error([] { optim::decays(with_params("2d"), Shape{3, 3}); }, ErrorKind::Invalid, {"'2d'", "all, matrices"});
}

TEST(OptimDecayParams, DescribeNamesTheChoiceWhenNotAll) {
  EXPECT_EQ(optim::describe(with_params("all")).find("weight_decay_params"), std::string::npos);
  EXPECT_NE(optim::describe(with_params("matrices")).find("weight_decay_params=matrices"), std::string::npos);
}

// config.json keeps the choice; a run saved before it existed decayed every parameter.
TEST(OptimDecayParams, TheSavedConfigurationKeepsTheChoiceAndOldRunsMeanAll) {
  TrainConfig config;
  config.optimizer.weight_decay_params = "matrices";
  nlohmann::json saved = config_to_json(config);
  EXPECT_EQ(config_from_json(saved, TrainConfig(), "run").optimizer.weight_decay_params, "matrices");
  saved["optimizer"].erase("weight_decay_params");
  TrainConfig requested;
  requested.optimizer.weight_decay_params = "matrices";  // the saved run decides, not the new command
  EXPECT_EQ(config_from_json(saved, requested, "run").optimizer.weight_decay_params, "all");
  saved["optimizer"]["weight_decay_params"] = "biases";
  expect_error([&] { config_from_json(saved, TrainConfig(), "old/config"); }, ErrorKind::Invalid,
               {"old/config: optimizer", "'biases'", "all, matrices"});
}

// One AdamW step through ModelRunner. At step 1 Adam's bias corrections make m_hat = g and
// v_hat = g^2, so each parameter moves to p * (1 - lr * wd) - lr * g / (|g| + eps), without the
// factor where it does not decay; g is read back from the new m = (1 - beta1) g. The decay term
// lr * wd * p is 0.05 * p here, far above f32 rounding, so a wrongly masked element fails.
TEST(OptimDecayParams, OneAdamWStepDecaysTheMatricesOnlyAsWorkedByHand) {
  nn::Model model = nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [7], "layers": [
      {"type": "Linear", "in_features": 7, "out_features": 5}, {"type": "LayerNorm", "normalized_shape": [5]},
      {"type": "ReLU"}, {"type": "Linear", "in_features": 5, "out_features": 3}]})"));
  const uint64_t seed = optim_test::fresh_seed();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937_64 rng(seed);
  Tensor x = Tensor::from_values({16, 7}, optim_test::random_normal(rng, 16 * 7), DType::f32);
  std::vector<double> yv(16);
  for (double& v : yv) v = static_cast<double>(rng() % 3);
  Tensor y = Tensor::from_values({16}, yv, DType::i64);
  const double lr = 0.1, wd = 0.5, beta1 = 0.9, eps = 1e-8;
  for (const std::string which : {"matrices", "all"}) {
    SCOPED_TRACE(which);
    optim::OptimizerConfig opt = with_params(which);
    opt.weight_decay = wd;
    ModelRunner runner(model, opt, {}, rng());
    NamedTensors before = runner.model_tensors();
    runner.train_step(x, y, lr, 1, 0);
    NamedTensors after = runner.model_tensors(), slots = runner.optimizer_tensors();
    int decayed = 0, kept = 0;
    for (size_t k = 0; k < before.size(); ++k) {
      const std::string& name = before[k].first;
      const bool decays = which == "all" || before[k].second.ndim() >= 2;
      (decays ? decayed : kept) += 1;
      std::vector<double> p0 = before[k].second.to_doubles(), p1 = after[k].second.to_doubles();
      std::vector<double> m1;
      for (const auto& [slot, t] : slots)
        if (slot == std::string(kOptimizerPrefix) + "exp_avg." + name) m1 = t.to_doubles();
      ASSERT_EQ(m1.size(), p0.size()) << name;
      for (size_t i = 0; i < p0.size(); ++i) {
        const double g = m1[i] / (1.0 - beta1);
        const double want = p0[i] * (decays ? 1.0 - lr * wd : 1.0) - lr * g / (std::fabs(g) + eps);
        ASSERT_NEAR(p1[i], want, 1e-5 * (1.0 + std::fabs(want))) << name << "[" << i << "] from " << p0[i];
      }
    }
    // Linear weights (2); the biases and the LayerNorm's weight and bias (4) are 1-d.
    EXPECT_EQ(decayed, which == "all" ? 6 : 2);
    EXPECT_EQ(kept, which == "all" ? 0 : 4);
  }
}

}  // namespace
}  // namespace gpuml
