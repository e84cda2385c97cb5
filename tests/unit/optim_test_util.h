// Helpers shared by the optim unit tests: typed-error expectations, fresh random data, and the
// torch.optim update formulas written out in double precision (the reference the fused ops and
// the graph-built updates are checked against).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace gpuml::optim_test {

// Runs fn, expecting a gpuml::Error of `kind` whose message contains every one of `words`.
template <typename Fn>
void expect_error(Fn&& fn, ErrorKind kind, const std::vector<std::string>& words) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& w : words)
      EXPECT_NE(e.message().find(w), std::string::npos) << "'" << w << "' not in: " << e.message();
  }
}

// A fresh seed per process run (printed by the test that uses it).
inline uint64_t fresh_seed() {
  static const uint64_t seed = std::random_device{}();
  return seed;
}

inline std::vector<double> random_normal(std::mt19937_64& rng, size_t n, double stddev = 1.0) {
  std::vector<double> v(n);
  for (double& x : v) x = std::normal_distribution<double>(0.0, stddev)(rng);
  return v;
}

// The torch.optim formulas, one parameter at a time in double precision.
struct TorchSgd {
  double lr, momentum, weight_decay;
  bool nesterov;
  std::vector<double> param, buf;  // buf empty until the first step, as in torch
  // Which elements decay (1) or not (0), as torch's parameter groups with weight_decay set or 0;
  // empty: every element decays.
  std::vector<double> decay = {};

  double decay_of(size_t i) const { return decay.empty() ? weight_decay : weight_decay * decay[i]; }

  void step(const std::vector<double>& grad) {
    for (size_t i = 0; i < param.size(); ++i) {
      double g = grad[i] + decay_of(i) * param[i];
      if (momentum != 0.0) {
        if (buf.size() != param.size()) buf.assign(param.size(), 0.0);
        buf[i] = momentum * buf[i] + g;
        g = nesterov ? g + momentum * buf[i] : buf[i];
      }
      param[i] -= lr * g;
    }
  }
};

struct TorchAdam {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  std::vector<double> param, m, v;
  int64_t t = 0;
  std::vector<double> decay = {};  // as TorchSgd::decay

  double decay_of(size_t i) const { return decay.empty() ? weight_decay : weight_decay * decay[i]; }

  void step(const std::vector<double>& grad) {
    ++t;
    if (m.empty()) m.assign(param.size(), 0.0), v.assign(param.size(), 0.0);
    double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    for (size_t i = 0; i < param.size(); ++i) {
      double g = grad[i];
      if (decoupled) param[i] *= 1.0 - lr * decay_of(i);
      else g += decay_of(i) * param[i];
      m[i] = beta1 * m[i] + (1.0 - beta1) * g;
      v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
      double denom = std::sqrt(v[i]) / std::sqrt(bias_correction2) + eps;
      param[i] -= lr / bias_correction1 * m[i] / denom;
    }
  }
};

// |got - want| <= tol * (1 + |want|) element by element.
inline ::testing::AssertionResult all_close(const std::vector<double>& got, const std::vector<double>& want,
                                            double tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1.0 + std::fabs(want[i]))))
      return ::testing::AssertionFailure() << "[" << i << "] got " << got[i] << " want " << want[i];
  return ::testing::AssertionSuccess();
}

}  // namespace gpuml::optim_test
