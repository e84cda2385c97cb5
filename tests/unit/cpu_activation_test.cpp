// The cpu backend's vectorisable exp and tanh (backend/cpu/cpu_activation.h) against libm in
// double, over the ranges gelu feeds them, and gelu's tanh form against the double formula.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backend/cpu/cpu_activation.h"

namespace gpuml::cpu {
namespace {

TEST(CpuActivation, ExpAndTanhAreWithinAFewUlp) {
  double exp_err = 0, tanh_err = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.00137f)
    exp_err = std::max(exp_err, std::fabs(exp_f32(x) / std::exp(static_cast<double>(x)) - 1));
  for (float u = -30.0f; u <= 30.0f; u += 0.000371f)
    tanh_err = std::max(tanh_err, std::fabs(tanh_f32(u) - std::tanh(static_cast<double>(u))));
  EXPECT_LT(exp_err, 4e-7);
  EXPECT_LT(tanh_err, 2e-7);
  EXPECT_EQ(tanh_f32(50.0f), 1.0f);
  EXPECT_EQ(tanh_f32(-std::numeric_limits<float>::infinity()), -1.0f);
  EXPECT_EQ(tanh_f32(0.0f), 0.0f);
}

TEST(CpuActivation, GeluTanhFormMatchesTheFormulaInDouble) {
  double y_err = 0, dy_err = 0;
  for (float x = -12.0f; x <= 12.0f; x += 0.000913f) {
    y_err = std::max(y_err, std::fabs(gelu_fn<float>(x, true) - gelu_fn<double>(x, true)));
    dy_err = std::max(dy_err, std::fabs(gelu_grad<float>(x, true) - gelu_grad<double>(x, true)));
  }
  EXPECT_LT(y_err, 2e-6);
  EXPECT_LT(dy_err, 2e-6);
  EXPECT_TRUE(std::isnan(gelu_fn<float>(std::numeric_limits<float>::quiet_NaN(), true)));
  EXPECT_TRUE(std::isnan(gelu_grad<float>(std::numeric_limits<float>::quiet_NaN(), true)));
}

}  // namespace
}  // namespace gpuml::cpu
