// OptimizerConfig validation, state layout, hyper feed and initial state.
#include <gtest/gtest.h>

#include "graph/graph.h"
#include "optim/optimizer.h"
#include "optim_test_util.h"

namespace gpuml::optim {
namespace {

using optim_test::expect_error;

OptimizerConfig make(std::string kind) {
  OptimizerConfig c;
  c.kind = std::move(kind);
  return c;
}

TEST(OptimConfig, DefaultsFollowTorch) {
  OptimizerConfig c;
  EXPECT_EQ(c.kind, "adam");
  EXPECT_DOUBLE_EQ(c.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.eps, 1e-8);
  EXPECT_DOUBLE_EQ(weight_decay_of(make("adam")), 0.0);
  EXPECT_DOUBLE_EQ(weight_decay_of(make("sgd")), 0.0);
  EXPECT_DOUBLE_EQ(weight_decay_of(make("adamw")), 0.01);
  OptimizerConfig explicit_zero = make("adamw");
  explicit_zero.weight_decay = 0.0;
  EXPECT_DOUBLE_EQ(weight_decay_of(explicit_zero), 0.0);
}

TEST(OptimConfig, StateRowsPerKind) {
  EXPECT_EQ(state_rows(make("sgd")), 1);
  OptimizerConfig momentum = make("sgd");
  momentum.momentum = 0.9;
  EXPECT_EQ(state_rows(momentum), 2);
  EXPECT_EQ(state_rows(make("adam")), 3);
  EXPECT_EQ(state_rows(make("adamw")), 3);
}

TEST(OptimConfig, ValidationErrorsAreClear) {
  expect_error([] { validate(make("rmsprop")); }, ErrorKind::Invalid, {"'rmsprop'", "sgd, adam, adamw"});
  OptimizerConfig c = make("sgd");
  c.lr = 0;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"lr", "> 0", "0"});
  c = make("adam");
  c.lr = -0.5;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"lr", "-0.5"});
  c = make("adam");
  c.beta1 = 1.0;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"beta1", "[0, 1)", "1"});
  c = make("adamw");
  c.beta2 = -0.1;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"adamw", "beta2", "-0.1"});
  c = make("sgd");
  c.nesterov = true;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"nesterov", "momentum > 0"});
  c = make("sgd");
  c.momentum = -0.9;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"momentum", "-0.9"});
  c = make("adam");
  c.momentum = 0.9;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"adam", "momentum", "sgd"});
  c = make("sgd");
  c.weight_decay = -0.01;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"weight_decay", "-0.01"});
  c = make("adam");
  c.eps = -1e-8;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"eps"});
  c = make("adam");
  c.clip_grad_norm = -1;
  expect_error([&] { validate(c); }, ErrorKind::Invalid, {"clip_grad_norm", "-1"});
}

TEST(OptimConfig, HyperValuesHoldLrAndBiasCorrections) {
  OptimizerConfig c = make("adam");
  c.beta1 = 0.8;
  c.beta2 = 0.9;
  std::vector<double> h = hyper_values(c, 0.25, 1, DType::f64).to_doubles();
  EXPECT_DOUBLE_EQ(h[0], 0.25);
  EXPECT_NEAR(h[1], 0.2, 1e-15);
  EXPECT_NEAR(h[2], 0.1, 1e-15);
  h = hyper_values(c, 0.25, 3, DType::f64).to_doubles();
  EXPECT_NEAR(h[1], 1 - 0.8 * 0.8 * 0.8, 1e-15);
  EXPECT_NEAR(h[2], 1 - 0.9 * 0.9 * 0.9, 1e-15);
  Tensor f32 = hyper_values(make("sgd"), 0.5, 7);
  EXPECT_EQ(f32.dtype(), DType::f32);
  EXPECT_EQ(f32.shape(), (Shape{3}));
  EXPECT_EQ(f32.to_doubles(), (std::vector<double>{0.5, 1.0, 1.0}));
  expect_error([&] { hyper_values(c, 0.1, 0); }, ErrorKind::Invalid, {"step", "from 1", "0"});
}

TEST(OptimConfig, InitialStateHoldsParamsThenZeros) {
  std::mt19937_64 rng(optim_test::fresh_seed());
  std::vector<double> p = optim_test::random_normal(rng, 11);
  Tensor flat = Tensor::from_values({11}, p, DType::f64);
  Tensor state = initial_state(make("adamw"), flat);
  EXPECT_EQ(state.shape(), (Shape{3, 11}));
  std::vector<double> v = state.to_doubles();
  for (int i = 0; i < 11; ++i) {
    EXPECT_EQ(v[i], p[i]);
    EXPECT_EQ(v[11 + i], 0.0);
    EXPECT_EQ(v[22 + i], 0.0);
  }
  // A strided flat view works, in f32 too.
  Tensor wide = Tensor::from_values({22}, optim_test::random_normal(rng, 22), DType::f32);
  Tensor every_other = wide.slice(0, 1, 22, 2);
  Tensor sgd_state = initial_state(make("sgd"), every_other);
  EXPECT_EQ(sgd_state.shape(), (Shape{1, 11}));
  EXPECT_EQ(sgd_state.to_doubles(), every_other.to_doubles());
  expect_error([&] { initial_state(make("sgd"), Tensor::from_values({2, 2}, {1, 2, 3, 4}, DType::f32)); },
               ErrorKind::Shape, {"(P,)", "(2, 2)"});
}

TEST(OptimConfig, EmitUpdateChecksTheStateShape) {
  Graph g;
  OptimizerConfig momentum = make("sgd");
  momentum.momentum = 0.9;
  Sym state = g.input("opt_state", {{1, 8}, DType::f32});  // sized for plain sgd
  Sym grad = g.input("grad", {{8}, DType::f32});
  Sym hyper = g.input("hyper", {{3}, DType::f32});
  Sym decay = g.input("decay", {{8}, DType::f32});
  expect_error([&] { emit_update(momentum, state, grad, hyper, decay); }, ErrorKind::Shape,
               {"sgd_update", "1 rows", "expected 2"});
  expect_error([&] { emit_update(make("nadam"), state, grad, hyper, decay); }, ErrorKind::Invalid, {"'nadam'"});
  expect_error([&] { emit_update(make("sgd"), state, grad, hyper, g.input("short", {{7}, DType::f32})); },
               ErrorKind::Shape, {"sgd_update", "decay", "(7,)"});
  Sym next = emit_update(make("sgd"), state, grad, hyper, decay);
  EXPECT_EQ(next.shape(), (Shape{1, 8}));
}

TEST(OptimConfig, DescribeNamesEveryHyperparameter) {
  OptimizerConfig c = make("adamw");
  c.clip_grad_norm = 1.5;
  std::string text = describe(c);
  for (const char* word : {"adamw", "lr=0.001", "0.9", "0.999", "weight_decay=0.01", "clip_grad_norm=1.5"})
    EXPECT_NE(text.find(word), std::string::npos) << word << " not in " << text;
  OptimizerConfig sgd = make("sgd");
  sgd.momentum = 0.9;
  EXPECT_NE(describe(sgd).find("momentum=0.9"), std::string::npos) << describe(sgd);
}

}  // namespace
}  // namespace gpuml::optim
