// Central-difference check of every gradient rule, in float64 on the reference backend, through
// the whole graph stack (autodiff -> planner -> executor): for each op sample,
// loss = sum(op(inputs) * R) with a fresh random R (summed over the outputs of an op with
// several), and d loss / d input is compared with
// (loss(x + eps) - loss(x - eps)) / (2 eps) element by element.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "op_samples.h"
#include "ops/grad_rules.h"

namespace gpuml {
namespace {

using gpuml::testing::OpSample;

constexpr double kEps = 1e-6;
constexpr double kTolerance = 1e-6;  // absolute + relative

// Samples whose output is f64 for f64 inputs and whose op is differentiable. Casts to narrower
// types are excluded: their rounding swamps a 1e-6 central difference (to_f64 covers cast).
bool grad_checkable(const OpSample& s) {
  if (!op_info(s.op).differentiable) return false;
  if (s.op == OpId::cast && s.attrs.dtype != DType::f64) return false;
  return true;
}

std::vector<OpSample> checkable_samples() {
  std::vector<OpSample> out;
  for (const OpSample& s : gpuml::testing::op_samples())
    if (grad_checkable(s)) out.push_back(s);
  return out;
}

uint64_t fresh_seed() { return std::random_device{}(); }

Tensor random_like(const Shape& shape, std::mt19937_64& rng) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::normal_distribution<double>(0.0, 1.0)(rng);
  return Tensor::from_values(shape, v, DType::f64);
}

class GradCheck : public ::testing::TestWithParam<OpSample> {};

TEST_P(GradCheck, MatchesCentralDifferences) {
  const OpSample& sample = GetParam();
  uint64_t seed = fresh_seed();
  SCOPED_TRACE(fmt::format("{} / {} seed {}", op_name(sample.op), sample.label, seed));
  std::vector<Tensor> inputs = gpuml::testing::make_sample_inputs(sample, DType::f64, seed);
  std::mt19937_64 rng(seed);

  Graph g;
  std::vector<Sym> syms;
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string name = fmt::format("in{}", i);
    syms.push_back(g.input(name, {inputs[i].shape(), inputs[i].dtype()}));
    feeds[name] = inputs[i];  // strided samples stay strided: the executor binds them
  }
  // loss = sum over the op's outputs (matmul_bgrad has two) of sum(output * R_k).
  Sym loss;
  std::vector<Sym> outs = emit_outputs(sample.op, syms, sample.attrs);
  for (size_t k = 0; k < outs.size(); ++k) {
    ASSERT_EQ(outs[k].dtype(), DType::f64);
    const std::string r_name = fmt::format("R{}", k);
    Sym r = g.input(r_name, {outs[k].shape(), DType::f64});
    feeds[r_name] = random_like(outs[k].shape(), rng);
    Sym term = sum(mul(outs[k], r));
    loss = k == 0 ? term : add(loss, term);
  }

  std::vector<size_t> wrt_index;
  std::vector<Sym> wrt;
  for (size_t i = 0; i < syms.size(); ++i)
    if (input_is_differentiable(sample.op, static_cast<int>(i)) && is_floating(inputs[i].dtype())) {
      wrt_index.push_back(i);
      wrt.push_back(syms[i]);
    }
  ASSERT_FALSE(wrt.empty()) << "a differentiable op sample with no differentiable input";
  std::vector<Sym> grads = gradients(g, loss, wrt);

  PlanOptions ref_only;
  ref_only.backends = {&backend_registry().reference()};
  std::vector<Sym> outputs{loss};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  Executor backward(plan_graph(g, outputs, ref_only));
  Executor forward(plan_graph(g, {loss}, ref_only));
  std::vector<Tensor> results = backward.run(feeds);

  for (size_t k = 0; k < wrt.size(); ++k) {
    size_t i = wrt_index[k];
    const Tensor& analytic = results[k + 1];
    ASSERT_EQ(analytic.shape(), inputs[i].shape());
    std::vector<double> values = inputs[i].to_doubles();
    std::vector<double> expected_grad = analytic.to_doubles();
    std::map<std::string, Tensor> perturbed = feeds;
    std::string name = fmt::format("in{}", i);
    int failures = 0;
    for (size_t j = 0; j < values.size() && failures < 5; ++j) {
      auto loss_at = [&](double delta) {
        std::vector<double> v = values;
        v[j] += delta;
        perturbed[name] = Tensor::from_values(inputs[i].shape(), v, DType::f64);
        return forward.run(perturbed)[0].item_as_double(0);
      };
      double numeric = (loss_at(kEps) - loss_at(-kEps)) / (2 * kEps);
      double got = expected_grad[j];
      if (!(std::abs(got - numeric) <= kTolerance * (1.0 + std::abs(numeric)))) {
        ++failures;
        ADD_FAILURE() << "input " << i << " element " << j << ": autodiff " << got << ", central difference "
                      << numeric;
      }
    }
  }
}

std::string sample_name(const ::testing::TestParamInfo<OpSample>& info) {
  std::string name = fmt::format("{}_{}_{}", op_name(info.param.op), info.param.label, info.index);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(OpSamples, GradCheck, ::testing::ValuesIn(checkable_samples()), sample_name);

TEST(GradCoverage, EveryDifferentiableOpHasARuleAndANonEmptyCheckedSample) {
  for (OpId op : all_ops()) {
    if (!op_info(op).differentiable) continue;
    bool has_rule = false;
    for (int i = 0; i < 5; ++i) has_rule = has_rule || input_is_differentiable(op, i);
    EXPECT_TRUE(has_rule) << op_name(op) << " is differentiable in the op table but has no gradient rule";
    bool checked = false;
    for (const OpSample& s : checkable_samples()) {
      bool non_empty = true;
      for (const auto& in : s.inputs) non_empty = non_empty && numel(in.shape) > 0;
      checked = checked || (s.op == op && non_empty);
    }
    EXPECT_TRUE(checked) << op_name(op) << " has no grad-checked sample with data in tests/op_samples.cpp";
  }
}

TEST(GradCoverage, NonDifferentiableOpsHaveNoRule) {
  for (OpId op : all_ops())
    if (!op_info(op).differentiable) {
      EXPECT_FALSE(input_is_differentiable(op, 0)) << op_name(op);
    }
}

}  // namespace
}  // namespace gpuml
