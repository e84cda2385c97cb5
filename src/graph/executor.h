// Runs a Plan: allocates each device arena once, then for every run binds the feeds, runs the
// steps in order and returns the outputs as fresh host tensors (they survive the next run).
//
//   Graph g;
//   Sym x = g.input("x", {{2, 3}, DType::f32});
//   Sym y = relu(x);
//   Executor ex(plan_graph(g, {y}));
//   std::vector<Tensor> out = ex.run({{"x", Tensor::from_values({2, 3}, values, DType::f32)}});
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/planner.h"

namespace gpuml {

class Executor {
 public:
  explicit Executor(Plan plan);

  // Every Input and Param of the plan must be fed, with its exact shape and dtype; feeds may be
  // strided or live on another device (they are copied to where the plan wants them).
  std::vector<Tensor> run(const std::map<std::string, Tensor>& feeds);

  const Plan& plan() const { return plan_; }
  // Bytes held by the arenas: what plan().peak_bytes() promised.
  size_t arena_bytes() const;

 private:
  void bind_feeds(const std::map<std::string, Tensor>& feeds);
  void run_step(const PlanStep& step);

  Plan plan_;
  std::vector<std::shared_ptr<Storage>> arenas_;
  std::vector<Tensor> values_;  // one per plan value; arena tensors made once, the rest per run
};

}  // namespace gpuml
