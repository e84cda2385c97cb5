// Helpers for the nn tests: fresh random tensors and running one module's forward pass through
// the planner and executor (backends in registry order: cpu first, ref where cpu has no kernel).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "backend/dispatch.h"
#include "graph/executor.h"
#include "nn/module.h"

namespace gpuml::nn::testing {

inline Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, double low = -1.0,
                            double high = 1.0) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::uniform_real_distribution<double>(low, high)(rng);
  return Tensor::from_values(shape, v, DType::f32);
}

struct ForwardResult {
  Tensor y;
  std::map<std::string, Tensor> buffer_updates;
  uint64_t rng_offset_after = 0;
};

// Runs module.forward(x) with params fed from `values` (keys = full names under `prefix`).
inline ForwardResult run_forward(const Module& module, const Tensor& x,
                                 const std::map<std::string, Tensor>& values, bool training,
                                 const std::string& prefix = "layer", uint64_t dropout_seed = 0) {
  Graph g;
  Sym xs = g.input("x", type_of(x));
  std::vector<ParamInfo> infos;
  module.params(prefix, infos);
  std::map<std::string, Sym> leaves = declare_params(g, infos);
  ForwardContext ctx{g, training, [&](const std::string& n) { return leaves.at(n); }};
  ctx.dropout_seed = dropout_seed;
  Sym y = module.forward(xs, ctx, prefix);
  std::vector<Sym> outputs{
      copy(y)};  // a copy, so that an identity forward still has a planned output
  for (const auto& [name, sym] : ctx.buffer_updates) outputs.push_back(sym);
  Executor ex(plan_graph(g, outputs));
  std::map<std::string, Tensor> feeds = values;
  feeds["x"] = x;
  std::vector<Tensor> out = ex.run(feeds);
  ForwardResult r;
  r.y = out[0];
  for (size_t i = 0; i < ctx.buffer_updates.size(); ++i)
    r.buffer_updates[ctx.buffer_updates[i].first] = out[i + 1];
  r.rng_offset_after = ctx.rng_offset;
  return r;
}

inline void expect_close(const Tensor& got, const Shape& shape, const std::vector<double>& expected,
                         double tolerance = 1e-4) {
  ASSERT_EQ(got.shape(), shape);
  std::vector<double> g = got.to_doubles();
  ASSERT_EQ(g.size(), expected.size());
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], expected[i], tolerance * (1.0 + std::abs(expected[i]))) << "element " << i;
}

}  // namespace gpuml::nn::testing
