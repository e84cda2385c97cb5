// sgd_update and adam_update on every backend against the torch.optim formulas written out in
// double precision (optim_test_util.h), over several steps with the state fed back each time, on
// fresh random data and a random decay mask (torch's two parameter groups); plus the type rules'
// errors, and one AdamW step worked by hand for a 1-d and a 2-d parameter.
#include <gtest/gtest.h>

#include <cmath>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "backend/dispatch.h"
#include "optim_test_util.h"

namespace gpuml {
namespace {

using optim_test::all_close;
using optim_test::expect_error;
using optim_test::TorchAdam;
using optim_test::TorchSgd;

struct UpdateCase {
  std::string name;
  OpId op;
  Attrs attrs;
  std::string backend;
  DType dtype;
};

void PrintTo(const UpdateCase& c, std::ostream* os) { *os << c.name; }

std::vector<UpdateCase> update_cases() {
  std::vector<std::pair<std::string, Attrs>> sgd, adam;
  Attrs a;
  sgd.push_back({"sgd_plain", a});
  a.weight_decay = 0.03;
  sgd.push_back({"sgd_plain_wd", a});
  a.momentum = 0.9;
  sgd.push_back({"sgd_momentum_wd", a});
  a.nesterov = true;
  sgd.push_back({"sgd_nesterov_wd", a});
  a.weight_decay = 0.0;
  a.momentum = 0.5;
  sgd.push_back({"sgd_nesterov", a});
  Attrs b;
  b.eps = 1e-8;
  adam.push_back({"adam", b});
  b.weight_decay = 0.05;
  adam.push_back({"adam_l2", b});
  b.decoupled_weight_decay = true;
  adam.push_back({"adamw", b});
  b.beta1 = 0.5;
  b.beta2 = 0.9;
  b.eps = 1e-3;
  adam.push_back({"adamw_betas_eps", b});
  std::vector<UpdateCase> cases;
  for (std::string backend : {"cpu", "ref"})
    for (DType dtype : {DType::f32, DType::f64}) {
      for (auto& [name, attrs] : sgd)
        cases.push_back({backend + "_" + name + "_" + std::string(dtype_name(dtype)), OpId::sgd_update, attrs, backend,
                         dtype});
      for (auto& [name, attrs] : adam)
        cases.push_back({backend + "_" + name + "_" + std::string(dtype_name(dtype)), OpId::adam_update, attrs,
                         backend, dtype});
    }
  return cases;
}

class UpdateOp : public ::testing::TestWithParam<UpdateCase> {};

// Large enough that the cpu pass splits across threads; odd so that no chunk is a round size.
constexpr int64_t kParams = 20011;
constexpr int kSteps = 6;

TEST_P(UpdateOp, MatchesTorchFormulasOverSeveralSteps) {
  const UpdateCase& c = GetParam();
  Backend& backend = backend_registry().get(c.backend);
  const uint64_t seed = optim_test::fresh_seed();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937_64 rng(seed);
  std::vector<double> param = optim_test::random_normal(rng, kParams);
  // Round the start to the tested dtype, so that reference and op start from the same numbers.
  param = Tensor::from_values({kParams}, param, c.dtype).to_doubles();
  const double lr = 0.05;
  const bool is_sgd = c.op == OpId::sgd_update;
  const int64_t rows = is_sgd ? (c.attrs.momentum > 0 ? 2 : 1) : 3;
  // About a third of the elements do not decay (a bias or a norm scale in a real run).
  std::vector<double> decay(kParams);
  for (double& d : decay) d = rng() % 3 == 0 ? 0.0 : 1.0;
  const Tensor decay_input = Tensor::from_values({kParams}, decay, c.dtype);
  TorchSgd sgd{lr, c.attrs.momentum, c.attrs.weight_decay, c.attrs.nesterov, param, {}, decay};
  TorchAdam adam{lr, c.attrs.beta1, c.attrs.beta2, c.attrs.eps, c.attrs.weight_decay, c.attrs.decoupled_weight_decay,
                 param, {}, {}, 0, decay};
  std::vector<double> state_values(static_cast<size_t>(rows * kParams), 0.0);
  std::copy(param.begin(), param.end(), state_values.begin());
  Tensor state = Tensor::from_values({rows, kParams}, state_values, c.dtype);
  const double tol = c.dtype == DType::f64 ? 1e-12 : 2e-5;
  for (int step = 1; step <= kSteps; ++step) {
    std::vector<double> grad = Tensor::from_values({kParams}, optim_test::random_normal(rng, kParams), c.dtype)
                                   .to_doubles();
    double bc1 = 1.0 - std::pow(c.attrs.beta1, step), bc2 = 1.0 - std::pow(c.attrs.beta2, step);
    Tensor hyper = Tensor::from_values({3}, {lr, bc1, bc2}, c.dtype);
    state = run_op(backend, c.op, {state, Tensor::from_values({kParams}, grad, c.dtype), hyper, decay_input},
                   c.attrs);
    if (is_sgd) sgd.step(grad);
    else adam.step(grad);
    std::vector<double> got = state.to_doubles();
    auto row = [&](int64_t r) {
      return std::vector<double>(got.begin() + r * kParams, got.begin() + (r + 1) * kParams);
    };
    ASSERT_TRUE(all_close(row(0), is_sgd ? sgd.param : adam.param, tol)) << "param after step " << step;
    if (is_sgd && rows == 2) {
      ASSERT_TRUE(all_close(row(1), sgd.buf, tol)) << "momentum after step " << step;
    }
    if (!is_sgd) {
      ASSERT_TRUE(all_close(row(1), adam.m, tol)) << "m after step " << step;
      ASSERT_TRUE(all_close(row(2), adam.v, tol)) << "v after step " << step;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Optim, UpdateOp, ::testing::ValuesIn(update_cases()),
                         [](const ::testing::TestParamInfo<UpdateCase>& info) { return info.param.name; });

TEST(OptimUpdateOps, AreOptimizerKindAndNotDifferentiable) {
  for (OpId op : {OpId::sgd_update, OpId::adam_update}) {
    EXPECT_EQ(op_info(op).kind, OpKind::Optimizer);
    EXPECT_FALSE(op_info(op).differentiable);
    EXPECT_EQ(op_kind_name(op_info(op).kind), "optimizer");
  }
}

TEST(OptimUpdateOps, CpuAndRefSupportF32AndF64Only) {
  for (const char* name : {"cpu", "ref"}) {
    Backend& b = backend_registry().get(name);
    for (OpId op : {OpId::sgd_update, OpId::adam_update}) {
      EXPECT_TRUE(b.supports(op, DType::f32)) << name;
      EXPECT_TRUE(b.supports(op, DType::f64)) << name;
      EXPECT_FALSE(b.supports(op, DType::bf16)) << name;
    }
  }
}

TensorType f32(Shape s) { return {std::move(s), DType::f32}; }

TEST(OptimUpdateOps, TypeRuleErrorsNameTheProblem) {
  Attrs plain, momentum;
  momentum.momentum = 0.9;
  auto infer = [](OpId op, std::vector<TensorType> in, const Attrs& a) { return infer_type(op, in, a); };
  EXPECT_EQ(infer(OpId::sgd_update, {f32({1, 7}), f32({7}), f32({3}), f32({7})}, plain).shape, (Shape{1, 7}));
  EXPECT_EQ(infer(OpId::sgd_update, {f32({2, 7}), f32({7}), f32({3}), f32({7})}, momentum).shape, (Shape{2, 7}));
  EXPECT_EQ(infer(OpId::adam_update, {f32({3, 7}), f32({7}), f32({3}), f32({7})}, {}).shape, (Shape{3, 7}));
  expect_error([&] { infer(OpId::sgd_update, {f32({1, 7}), f32({7}), f32({3}), f32({7})}, momentum); }, ErrorKind::Shape,
               {"sgd_update", "1 rows", "expected 2", "momentum 0.9"});
  expect_error([&] { infer(OpId::sgd_update, {f32({2, 7}), f32({7}), f32({3}), f32({7})}, plain); }, ErrorKind::Shape,
               {"sgd_update", "2 rows", "expected 1"});
  expect_error([&] { infer(OpId::adam_update, {f32({2, 7}), f32({7}), f32({3}), f32({7})}, {}); }, ErrorKind::Shape,
               {"adam_update", "expected 3", "param, m, v"});
  expect_error([&] { infer(OpId::adam_update, {f32({3, 7}), f32({8}), f32({3}), f32({7})}, {}); }, ErrorKind::Shape,
               {"adam_update", "(8,)", "P = 7"});
  expect_error([&] { infer(OpId::adam_update, {f32({3, 7}), f32({7}), f32({2}), f32({7})}, {}); }, ErrorKind::Shape,
               {"adam_update", "hyper", "(3,)", "(2,)"});
  expect_error([&] { infer(OpId::adam_update, {f32({21}), f32({7}), f32({3}), f32({7})}, {}); }, ErrorKind::Shape,
               {"adam_update", "state", "2 dims"});
  expect_error([&] { infer(OpId::sgd_update, {{{1, 7}, DType::bf16}, {{7}, DType::bf16}, {{3}, DType::bf16}, {{7}, DType::bf16}}, {}); },
               ErrorKind::DType, {"sgd_update", "f32 or f64", "bf16"});
  expect_error([&] { infer(OpId::sgd_update, {f32({1, 7}), {{7}, DType::f64}, f32({3}), f32({7})}, {}); }, ErrorKind::DType,
               {"sgd_update", "share a dtype", "f64"});
  expect_error([&] { infer(OpId::adam_update, {f32({3, 7}), f32({7}), f32({3}), f32({6})}, {}); }, ErrorKind::Shape,
               {"adam_update", "decay", "(6,)", "P = 7"});
  expect_error([&] { infer(OpId::sgd_update, {f32({1, 7}), f32({7}), f32({3}), {{7}, DType::f64}}, {}); },
               ErrorKind::DType, {"sgd_update", "decay", "share a dtype", "f64"});
  expect_error([&] { infer(OpId::adam_update, {f32({3, 7}), f32({7}), f32({3})}, {}); }, ErrorKind::Invalid,
               {"adam_update", "takes 4 inputs", "got 3"});
  Attrs nesterov_alone;
  nesterov_alone.nesterov = true;
  expect_error([&] { infer(OpId::sgd_update, {f32({1, 7}), f32({7}), f32({3}), f32({7})}, nesterov_alone); },
               ErrorKind::Invalid, {"sgd_update", "nesterov", "momentum"});
  Attrs bad_beta;
  bad_beta.beta2 = 1.0;
  expect_error([&] { infer(OpId::adam_update, {f32({3, 7}), f32({7}), f32({3}), f32({7})}, bad_beta); }, ErrorKind::Invalid,
               {"adam_update", "betas", "[0, 1)"});
  Attrs negative_wd;
  negative_wd.weight_decay = -0.1;
  expect_error([&] { infer(OpId::adam_update, {f32({3, 7}), f32({7}), f32({3}), f32({7})}, negative_wd); },
               ErrorKind::Invalid, {"adam_update", "weight_decay", "-0.1"});
}

TEST(OptimUpdateOps, AdamRejectsAZeroBiasCorrectionOnEveryBackend) {
  std::mt19937_64 rng(optim_test::fresh_seed());
  Tensor state = Tensor::from_values({3, 5}, optim_test::random_normal(rng, 15), DType::f32);
  Tensor grad = Tensor::from_values({5}, optim_test::random_normal(rng, 5), DType::f32);
  Tensor hyper = Tensor::from_values({3}, {0.1, 0.0, 0.001}, DType::f32);  // step 0: 1 - beta1^0 = 0
  Tensor decay = Tensor::from_values({5}, {1, 1, 0, 1, 0}, DType::f32);
  for (const char* name : {"cpu", "ref"})
    expect_error([&] { run_op(backend_registry().get(name), OpId::adam_update, {state, grad, hyper, decay}); },
                 ErrorKind::Invalid, {"adam_update", "1-beta1^t", "counts from 1"});
}

// The cpu passes flush denormal state to zero (cpu_optim.cpp's FlushDenormals: a denormal lane
// made the pass 16x slower): a first moment of 1e-39 whose gradient is 0 becomes 0 on cpu, where
// ref (the spec) keeps 0.9e-39; the other elements and every parameter match ref; and the float
// mode of the calling thread is what it was before (x86: MXCSR), so no later kernel flushes.
TEST(OptimUpdateOps, CpuFlushesDenormalStateToZeroAndRestoresTheFloatMode) {
  constexpr int64_t n = 64;
  const float denormal = 1e-39f;
  ASSERT_TRUE(std::fpclassify(denormal) == FP_SUBNORMAL);
  std::vector<double> state(3 * n, 0.0), grad(n, 0.0), momentum_state(2 * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    state[i] = momentum_state[i] = 0.01 * static_cast<double>(i + 1);  // params
    state[2 * n + i] = 1e-4;                                            // v
    if (i % 2 == 0) {
      state[n + i] = momentum_state[n + i] = denormal;  // m (or the momentum buffer), gradient 0
    } else {
      grad[i] = 0.5;
      state[n + i] = momentum_state[n + i] = 0.25;
    }
  }
  const Tensor decay = Tensor::from_values({n}, std::vector<double>(n, 1.0), DType::f32);
  const Tensor g = Tensor::from_values({n}, grad, DType::f32);
  Attrs adam, sgd;
  adam.eps = 1e-8;
  sgd.momentum = 0.9;
  struct Case {
    OpId op;
    Attrs attrs;
    Tensor state, hyper;
  };
  const Case cases[] = {
      {OpId::adam_update, adam, Tensor::from_values({3, n}, state, DType::f32),
       Tensor::from_values({3}, {1e-3, 1 - std::pow(0.9, 5), 1 - std::pow(0.999, 5)}, DType::f32)},
      {OpId::sgd_update, sgd, Tensor::from_values({2, n}, momentum_state, DType::f32),
       Tensor::from_values({3}, {0.1, 0, 0}, DType::f32)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(op_name(c.op));
#if defined(__x86_64__) || defined(__i386__)
    const unsigned mode_before = _mm_getcsr();
#endif
    const std::vector<double> cpu =
        run_op(backend_registry().get("cpu"), c.op, {c.state, g, c.hyper, decay}, c.attrs).to_doubles();
#if defined(__x86_64__) || defined(__i386__)
    EXPECT_EQ(_mm_getcsr() & 0x8040u, mode_before & 0x8040u) << "the cpu pass left FTZ/DAZ set on this thread";
#endif
    const std::vector<double> ref =
        run_op(backend_registry().get("ref"), c.op, {c.state, g, c.hyper, decay}, c.attrs).to_doubles();
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(cpu[i], ref[i], 1e-6 * std::abs(ref[i])) << "param " << i;
      if (i % 2 == 0) {
        EXPECT_EQ(cpu[n + i], 0.0) << "moment " << i << " (denormal) not flushed";
        EXPECT_TRUE(std::fpclassify(static_cast<float>(ref[n + i])) == FP_SUBNORMAL) << "ref's moment " << i;
      } else {
        EXPECT_NEAR(cpu[n + i], ref[n + i], 1e-6 * std::abs(ref[n + i])) << "moment " << i;
      }
    }
  }
}

}  // namespace
}  // namespace gpuml
