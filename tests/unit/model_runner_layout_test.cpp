// The layout of ModelRunner's flat state: each parameter starts 256-byte aligned in every row
// (what cuBLASLt and cuDNN want of their operands), and the gaps between parameters stay zero
// through training, whatever the optimizer, so they never leak into the weights.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "nn/model.h"
#include "train/model_runner.h"

namespace gpuml {
namespace {

TEST(ModelRunnerLayout, ParametersAreAlignedAndTheGapsStayZero) {
  // Odd sizes, so that every parameter but the first is followed by a gap.
  nn::Model model = nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [7], "layers": [
      {"type": "Linear", "in_features": 7, "out_features": 5}, {"type": "ReLU"},
      {"type": "Linear", "in_features": 5, "out_features": 3}]})"));
  std::mt19937_64 rng(std::random_device{}());
  std::vector<double> xv(16 * 7), yv(16);
  for (double& v : xv) v = std::normal_distribution<double>()(rng);
  for (double& v : yv) v = static_cast<double>(rng() % 3);
  Tensor x = Tensor::from_values({16, 7}, xv, DType::f32), y = Tensor::from_values({16}, yv, DType::i64);
  for (const char* kind : {"adam", "sgd"}) {
    SCOPED_TRACE(kind);
    optim::OptimizerConfig opt;
    opt.kind = kind;
    opt.weight_decay = 0.1;
    if (std::string(kind) == "sgd") opt.momentum = 0.9;
    ModelRunner runner(model, opt, {}, 3);
    const std::vector<double> first_weight = runner.model_tensors().front().second.to_doubles();
    std::vector<std::pair<int64_t, int64_t>> used;  // [start, end) of each parameter
    for (const nn::ParamInfo& p : model.param_infos()) {
      const int64_t at = runner.state_offset(p.name);
      EXPECT_EQ(at % 64, 0) << p.name << " starts at column " << at;
      used.emplace_back(at, at + numel(p.shape));
    }
    for (int step = 1; step <= 3; ++step) runner.train_step(x, y, 0.1, step, 0);
    Tensor state = runner.state_snapshot();
    const int64_t rows = state.dim(0), cols = state.dim(1);
    EXPECT_EQ(cols % 64, 0);
    int64_t gaps = 0;
    for (int64_t c = 0; c < cols; ++c) {
      bool in_param = false;
      for (auto [b, e] : used) in_param |= c >= b && c < e;
      if (in_param) continue;
      ++gaps;
      for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(state.item_as_double(r * cols + c), 0.0) << "row " << r << " col " << c;
    }
    EXPECT_GT(gaps, 0);
    // The weights moved: the steps trained the aligned slices.
    EXPECT_NE(runner.model_tensors().front().second.to_doubles(), first_weight);
  }
}

}  // namespace
}  // namespace gpuml
