// --zero 1 (ModelRunner::set_zero): each rank updates its share of the state's columns and the
// ranks all-gather the new parameters. Ranks are threads (thread_communicator.h). The model's state
// row has 195 columns (slots of 20, 4 and 12 floats, each padded to 64, then 3), so 2 ranks split
// it 98 + 97 (the broadcast path) and 3 ranks 65 each (the in-place all-gather). Against the same
// ranks without the split: the same bits in every rank's parameters after each run, and, once
// gathered, in the optimizer state; AdamW with weight decay on matrices, without clipping (the
// gradient reduce-scattered) and with it (all-reduced: the norm is the whole gradient's).
#include <gtest/gtest.h>

#include <exception>
#include <map>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "backend/dispatch.h"
#include "nn/model.h"
#include "thread_communicator.h"
#include "train/model_runner.h"

namespace gpuml {
namespace {

using testing::ThreadCommunicator;
using testing::ThreadGroup;

nn::Model small_mlp() {
  return nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [5], "layers": [
      {"type": "Linear", "in_features": 5, "out_features": 4}, {"type": "ReLU"},
      {"type": "Linear", "in_features": 4, "out_features": 3}]})"));
}

// `clip` > 0: small enough to clip every step here.
optim::OptimizerConfig adamw(double clip) {
  optim::OptimizerConfig c;
  c.kind = "adamw";
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  c.weight_decay_params = "matrices";
  c.clip_grad_norm = clip;
  return c;
}

std::map<std::string, std::vector<double>> as_values(const NamedTensors& tensors) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : tensors) out[name] = t.to_doubles();
  return out;
}

struct RankResult {
  std::map<std::string, std::vector<double>> model, optimizer;
};

// `steps` data-parallel Adam steps on `ranks` threads, each taking 4 rows of every batch of
// 4 x ranks rows; the tensors of every rank.
std::vector<RankResult> train(int ranks, int zero, int steps, uint64_t data_seed, double clip) {
  const nn::Model model = small_mlp();
  const optim::OptimizerConfig opt = adamw(clip);
  std::mt19937_64 rng(data_seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Tensor> xs, ys;
  const int64_t rows = 4 * ranks;
  for (int s = 0; s < steps; ++s) {
    std::vector<double> x(static_cast<size_t>(rows * 5)), y(static_cast<size_t>(rows));
    for (double& v : x) v = normal(rng);
    for (double& v : y) v = static_cast<double>(rng() % 3);
    xs.push_back(Tensor::from_values({rows, 5}, x, DType::f32));
    ys.push_back(Tensor::from_values({rows}, y, DType::i64));
  }
  PlanOptions plan;
  plan.backends = {&backend_registry().reference()};
  std::vector<RankResult> out(static_cast<size_t>(ranks));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(ranks));
  auto group = std::make_shared<ThreadGroup>(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        ModelRunner runner(model, opt, plan, /*seed*/ 3);
        runner.set_communicator(std::make_shared<ThreadCommunicator>(group, r), std::chrono::seconds(20));
        runner.set_zero(zero);
        runner.broadcast_state_from_rank0();
        for (int s = 0; s < steps; ++s)
          runner.train_step(xs[static_cast<size_t>(s)].slice(0, 4 * r, 4 * r + 4),
                            ys[static_cast<size_t>(s)].slice(0, 4 * r, 4 * r + 4), opt.lr, s + 1, 0);
        if (zero == 1) {
          EXPECT_THROW(runner.optimizer_tensors(), Error) << "the slots are split: not whole yet";
        }
        runner.gather_sharded_state();
        out[static_cast<size_t>(r)] = {as_values(runner.model_tensors()), as_values(runner.optimizer_tensors())};
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

void expect_same_bits(const std::map<std::string, std::vector<double>>& a,
                      const std::map<std::string, std::vector<double>>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, values] : a) {
    ASSERT_TRUE(b.count(name)) << what << ": " << name;
    EXPECT_EQ(values, b.at(name)) << what << ": " << name;
  }
}

TEST(ZeroUpdate, SplitOverTwoOrThreeRanksGivesTheSameBitsAsTheWholeUpdate) {
  const uint64_t seed = std::random_device{}();
  // Without clipping the gradient is reduce-scattered (each rank gets its share's sum); with it,
  // all-reduced (every rank takes the whole gradient's norm).
  for (const auto& [ranks, clip] : {std::pair{2, 0.0}, {3, 0.0}, {2, 0.05}, {3, 0.05}}) {
    SCOPED_TRACE(fmt::format("{} ranks, clip {}, data seed {}", ranks, clip, seed));
    const std::vector<RankResult> whole = train(ranks, 0, 6, seed, clip), split = train(ranks, 1, 6, seed, clip);
    for (int r = 0; r < ranks; ++r) {
      expect_same_bits(whole[static_cast<size_t>(r)].model, split[static_cast<size_t>(r)].model, "parameters");
      expect_same_bits(whole[static_cast<size_t>(r)].optimizer, split[static_cast<size_t>(r)].optimizer,
                       "optimizer state");
    }
    // The control: training moved the weights (the comparison above compares something).
    const std::vector<RankResult> fewer = train(ranks, 1, 2, seed, clip);
    EXPECT_NE(fewer[0].model, split[0].model);
  }
}

TEST(ZeroUpdate, StageOtherThanZeroOrOneIsRefused) {
  ModelRunner runner(small_mlp(), adamw(0.0), PlanOptions{}, 1);
  EXPECT_THROW(runner.set_zero(2), Error);
  EXPECT_NO_THROW(runner.set_zero(1));  // one process: nothing to split, nothing changes
}

}  // namespace
}  // namespace gpuml
