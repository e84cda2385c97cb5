// End to end: a logistic-regression training step built as the trainer builds it (params are
// views of row 0 of the optimizer state, gradients flattened and concatenated, one update op),
// run for 50 steps with each optimizer: the loss must fall. Fresh random data every run.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "optim_test_util.h"

namespace gpuml {
namespace {

using optim::OptimizerConfig;

constexpr int64_t kRows = 96, kFeatures = 6, kClasses = 3;
constexpr int64_t kWeights = kClasses * kFeatures, kParams = kWeights + kClasses;
constexpr int kSteps = 50;

struct Problem {
  Tensor x;  // (N, D) f32
  Tensor y;  // (N,) i64: the argmax of a random linear teacher, so the data are separable
  Tensor initial_params;  // (P,) f32, small random
};

Problem make_problem(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> x = optim_test::random_normal(rng, kRows * kFeatures);
  std::vector<double> teacher = optim_test::random_normal(rng, kWeights);
  std::vector<double> y(kRows);
  for (int64_t n = 0; n < kRows; ++n) {
    double best = -1e300;
    for (int64_t c = 0; c < kClasses; ++c) {
      double score = 0;
      for (int64_t d = 0; d < kFeatures; ++d) score += teacher[c * kFeatures + d] * x[n * kFeatures + d];
      if (score > best) best = score, y[n] = static_cast<double>(c);
    }
  }
  return {Tensor::from_values({kRows, kFeatures}, x, DType::f32), Tensor::from_values({kRows}, y, DType::i64),
          Tensor::from_values({kParams}, optim_test::random_normal(rng, kParams, 0.1), DType::f32)};
}

// The training step graph: (x, y, opt_state, hyper) -> (loss, new opt_state).
struct TrainStep {
  Graph graph;
  std::unique_ptr<Executor> executor;

  TrainStep(const OptimizerConfig& config, const std::vector<Backend*>& backends) {
    Sym x = graph.input("x", {{kRows, kFeatures}, DType::f32});
    Sym y = graph.input("y", {{kRows}, DType::i64});
    Sym state = graph.input("opt_state", {{optim::state_rows(config), kParams}, DType::f32});
    Sym hyper = graph.input("hyper", {{3}, DType::f32});
    Sym params = reshape(slice(state, 0, 0, 1), {kParams});                      // (P,)
    Sym weight = reshape(slice(params, 0, 0, kWeights), {kClasses, kFeatures});  // (C, D)
    Sym bias = slice(params, 0, kWeights, kParams);                              // (C,)
    Sym logits = add(matmul(x, weight, false, /*trans_b*/ true), bias);          // (N, C)
    Sym loss = cross_entropy(logits, y);
    std::vector<Sym> grads = gradients(graph, loss, {weight, bias});
    Sym flat_grad = concat({reshape(grads[0], {kWeights}), grads[1]}, 0);  // (P,)
    Sym decay = fill(graph, {kParams}, 1.0, DType::f32);  // every parameter decays, as torch's one group
    Sym next = optim::emit_update(config, state, flat_grad, hyper, decay);
    PlanOptions options;
    options.backends = backends;
    executor = std::make_unique<Executor>(plan_graph(graph, {loss, next}, options));
  }
};

// Runs kSteps; returns the loss before each step and the final state.
std::pair<std::vector<double>, Tensor> train(const OptimizerConfig& config, const Problem& problem,
                                             const std::vector<Backend*>& backends = {},
                                             const optim::ScheduleConfig& schedule = {}) {
  TrainStep step(config, backends);
  Tensor state = optim::initial_state(config, problem.initial_params);
  std::vector<double> losses;
  for (int64_t t = 0; t < kSteps; ++t) {
    double lr = optim::lr_at(schedule, config.lr, t, /*steps_per_epoch*/ 10, kSteps);
    std::vector<Tensor> out = step.executor->run(
        {{"x", problem.x}, {"y", problem.y}, {"opt_state", state}, {"hyper", optim::hyper_values(config, lr, t + 1)}});
    losses.push_back(out[0].to_doubles()[0]);
    state = out[1];
  }
  return {losses, state};
}

struct TrainCase {
  std::string name;
  OptimizerConfig config;
};

void PrintTo(const TrainCase& c, std::ostream* os) { *os << c.name; }

std::vector<TrainCase> train_cases() {
  std::vector<TrainCase> cases;
  OptimizerConfig c;
  c.kind = "sgd";
  c.lr = 0.5;
  cases.push_back({"sgd", c});
  c.lr = 0.1;
  c.momentum = 0.9;
  cases.push_back({"sgd_momentum", c});
  c.nesterov = true;
  c.weight_decay = 1e-3;
  cases.push_back({"sgd_nesterov_wd", c});
  c = {};
  c.lr = 0.05;
  cases.push_back({"adam", c});
  c.kind = "adamw";
  cases.push_back({"adamw", c});
  c.clip_grad_norm = 0.1;  // tight: clipping is active on every step
  cases.push_back({"adamw_clipped", c});
  return cases;
}

class OptimTrain : public ::testing::TestWithParam<TrainCase> {};

TEST_P(OptimTrain, LossFallsOverFiftySteps) {
  const uint64_t seed = optim_test::fresh_seed();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  auto [losses, state] = train(GetParam().config, make_problem(seed));
  ASSERT_EQ(losses.size(), static_cast<size_t>(kSteps));
  for (double l : losses) ASSERT_TRUE(std::isfinite(l));
  EXPECT_LT(losses.back(), 0.6 * losses.front()) << "first " << losses.front() << " last " << losses.back();
  // Mostly downhill, not one lucky step.
  int falls = 0;
  for (int t = 1; t < kSteps; ++t) falls += losses[t] < losses[t - 1];
  EXPECT_GT(falls, kSteps * 3 / 4);
}

INSTANTIATE_TEST_SUITE_P(Optim, OptimTrain, ::testing::ValuesIn(train_cases()),
                         [](const ::testing::TestParamInfo<TrainCase>& info) { return info.param.name; });

// The same fifty steps planned on cpu and on ref give the same parameters, schedule included.
TEST(OptimTrainBackends, CpuMatchesRefOverFiftySteps) {
  const uint64_t seed = optim_test::fresh_seed();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  Problem problem = make_problem(seed);
  OptimizerConfig c;
  c.kind = "adamw";
  c.lr = 0.05;
  c.clip_grad_norm = 1.0;
  optim::ScheduleConfig cosine = optim::parse_schedule("cosine:0.001,warmup:5");
  auto [cpu_losses, cpu_state] = train(c, problem, {&backend_registry().get("cpu")}, cosine);
  auto [ref_losses, ref_state] = train(c, problem, {&backend_registry().get("ref")}, cosine);
  EXPECT_TRUE(optim_test::all_close(cpu_state.to_doubles(), ref_state.to_doubles(), 1e-4));
  EXPECT_TRUE(optim_test::all_close(cpu_losses, ref_losses, 1e-4));
  EXPECT_LT(cpu_losses.back(), 0.6 * cpu_losses.front());
}

}  // namespace
}  // namespace gpuml
