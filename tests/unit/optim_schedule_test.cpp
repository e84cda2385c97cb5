// Learning-rate schedules at their boundary steps, the CLI syntax, and their errors.
#include <gtest/gtest.h>

#include <numbers>

#include "optim/schedule.h"
#include "optim_test_util.h"

namespace gpuml::optim {
namespace {

using optim_test::expect_error;

// A base lr drawn per run, so that no expected value is a coincidence of one number.
double fresh_base_lr() {
  std::mt19937_64 rng(optim_test::fresh_seed());
  return std::uniform_real_distribution<double>(0.01, 1.0)(rng);
}

TEST(OptimSchedule, ConstantIsTheBaseLr) {
  const double base = fresh_base_lr();
  ScheduleConfig s;
  for (int64_t step : {0, 1, 99, 10000}) EXPECT_DOUBLE_EQ(lr_at(s, base, step, 7, 100), base);
}

TEST(OptimSchedule, StepDecaysOncePerStepSizeEpochsLikeStepLR) {
  const double base = fresh_base_lr();
  ScheduleConfig s = parse_schedule("step:2:0.5");
  const int64_t per_epoch = 10;
  // Epochs 0-1 at base, 2-3 at base/2, 4-5 at base/4: the change lands on the first step of epoch 2.
  EXPECT_DOUBLE_EQ(lr_at(s, base, 0, per_epoch, 100), base);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 19, per_epoch, 100), base);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 20, per_epoch, 100), base * 0.5);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 39, per_epoch, 100), base * 0.5);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 40, per_epoch, 100), base * 0.25);
  ScheduleConfig every_epoch = parse_schedule("step:1");  // gamma defaults to 0.1 as in torch
  EXPECT_DOUBLE_EQ(lr_at(every_epoch, base, 9, per_epoch, 100), base);
  EXPECT_NEAR(lr_at(every_epoch, base, 10, per_epoch, 100), base * 0.1, 1e-15);
  EXPECT_NEAR(lr_at(every_epoch, base, 35, per_epoch, 100), base * 1e-3, 1e-15);
}

TEST(OptimSchedule, CosineAnnealsFromBaseToMinLr) {
  const double base = fresh_base_lr(), min_lr = base / 10;
  ScheduleConfig s;
  s.kind = "cosine";
  s.min_lr = min_lr;
  const int64_t total = 40;
  EXPECT_DOUBLE_EQ(lr_at(s, base, 0, 5, total), base);
  EXPECT_NEAR(lr_at(s, base, 20, 5, total), (base + min_lr) / 2, 1e-15);  // half way
  const double last = min_lr + (base - min_lr) * (1 + std::cos(std::numbers::pi * 39 / 40)) / 2;
  EXPECT_NEAR(lr_at(s, base, 39, 5, total), last, 1e-15);
  EXPECT_GT(lr_at(s, base, 39, 5, total), min_lr);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 40, 5, total), min_lr);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 1000, 5, total), min_lr);  // past the end: stays at min_lr
  for (int64_t step = 1; step <= total; ++step)
    EXPECT_LT(lr_at(s, base, step, 5, total), lr_at(s, base, step - 1, 5, total)) << step;
}

TEST(OptimSchedule, WarmupRampsLinearlyThenHandsOver) {
  const double base = fresh_base_lr();
  ScheduleConfig s = parse_schedule("cosine,warmup:4");
  EXPECT_EQ(s.warmup_steps, 4);
  const int64_t total = 14;
  EXPECT_DOUBLE_EQ(lr_at(s, base, 0, 100, total), base * 0.25);  // never an lr-0 step
  EXPECT_DOUBLE_EQ(lr_at(s, base, 1, 100, total), base * 0.5);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 3, 100, total), base);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 4, 100, total), base);  // cosine starts after the warm-up
  EXPECT_NEAR(lr_at(s, base, 9, 100, total), base / 2, 1e-15);
  EXPECT_DOUBLE_EQ(lr_at(s, base, 14, 100, total), 0.0);
  ScheduleConfig constant = parse_schedule("constant,warmup:10");
  EXPECT_DOUBLE_EQ(lr_at(constant, base, 4, 100, 1000), base * 0.5);
  EXPECT_DOUBLE_EQ(lr_at(constant, base, 10, 100, 1000), base);
}

TEST(OptimSchedule, ParsesEveryForm) {
  ScheduleConfig s = parse_schedule("constant");
  EXPECT_EQ(s.kind, "constant");
  EXPECT_EQ(s.warmup_steps, 0);
  s = parse_schedule("step:3:0.25,warmup:7");
  EXPECT_EQ(s.kind, "step");
  EXPECT_EQ(s.step_size, 3);
  EXPECT_DOUBLE_EQ(s.gamma, 0.25);
  EXPECT_EQ(s.warmup_steps, 7);
  s = parse_schedule("cosine:1e-5");
  EXPECT_EQ(s.kind, "cosine");
  EXPECT_DOUBLE_EQ(s.min_lr, 1e-5);
}

TEST(OptimSchedule, ParseErrorsQuoteTheSpecAndSyntax) {
  expect_error([] { parse_schedule("linear"); }, ErrorKind::Invalid, {"'linear'", "unknown kind", "cosine"});
  expect_error([] { parse_schedule("step"); }, ErrorKind::Invalid, {"'step'", "STEP_SIZE"});
  expect_error([] { parse_schedule("step:two"); }, ErrorKind::Invalid, {"'two'", "not a valid number"});
  expect_error([] { parse_schedule("step:2:0.5x"); }, ErrorKind::Invalid, {"'0.5x'", "GAMMA"});
  expect_error([] { parse_schedule("step:0"); }, ErrorKind::Invalid, {"step_size", ">= 1", "0"});
  expect_error([] { parse_schedule("cosine:1:2"); }, ErrorKind::Invalid, {"cosine", "at most 1"});
  expect_error([] { parse_schedule("constant:3"); }, ErrorKind::Invalid, {"constant", "at most 0"});
  expect_error([] { parse_schedule("cosine,warm:5"); }, ErrorKind::Invalid, {"'warm:5'", "warmup:N"});
  expect_error([] { parse_schedule("cosine,warmup:-5"); }, ErrorKind::Invalid, {"warmup_steps", "-5"});
  expect_error([] { parse_schedule("cosine,warmup:1,x"); }, ErrorKind::Invalid, {"too many"});
  expect_error([] { parse_schedule(""); }, ErrorKind::Invalid, {"unknown kind"});
}

TEST(OptimSchedule, LrAtRejectsBadArguments) {
  ScheduleConfig cosine = parse_schedule("cosine:0.5,warmup:10");
  expect_error([&] { lr_at(cosine, 0.1, 0, 1, 100); }, ErrorKind::Invalid, {"min_lr 0.5", "base lr 0.1"});
  expect_error([&] { lr_at(cosine, 1.0, 0, 1, 10); }, ErrorKind::Invalid, {"total_steps 10", "warmup_steps 10"});
  ScheduleConfig s;
  expect_error([&] { lr_at(s, 0.1, -1, 1, 10); }, ErrorKind::Invalid, {"step", "-1"});
  expect_error([&] { lr_at(s, 0.1, 0, 0, 10); }, ErrorKind::Invalid, {"steps_per_epoch", "0"});
  expect_error([&] { lr_at(s, 0.0, 0, 1, 10); }, ErrorKind::Invalid, {"base lr", "> 0"});
  s.gamma = -1;
  expect_error([&] { validate(s); }, ErrorKind::Invalid, {"gamma", "-1"});
  s = {};
  s.kind = "exponential";
  expect_error([&] { validate(s); }, ErrorKind::Invalid, {"'exponential'", "constant, step, cosine"});
}

}  // namespace
}  // namespace gpuml::optim
