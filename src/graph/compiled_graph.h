// A graph built once per distinct input signature (shapes and dtypes) and replayed: the plan
// cache. The last, smaller batch of an epoch gets its own graph, plan and arena.
//
//   CompiledGraph step({"x"}, [&](Graph& g, const std::vector<Sym>& in) {
//     Sym w = g.param("w", {{10, 784}, DType::f32});
//     return std::vector<Sym>{matmul(in[0], w, false, true)};
//   });
//   std::vector<Tensor> y = step.run({x_batch}, {{"w", w_tensor}});
//   step.cache_size();   // 1 per distinct input shape seen so far
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/executor.h"

namespace gpuml {

using GraphBuilder = std::function<std::vector<Sym>(Graph& graph, const std::vector<Sym>& inputs)>;

class CompiledGraph {
 public:
  // `input_names` name the graph inputs made from run()'s positional tensors.
  CompiledGraph(std::vector<std::string> input_names, GraphBuilder builder, PlanOptions options = {});

  // Builds and plans on the first call with this signature; runs the cached plan after that.
  // `params` feed the params the builder declared.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, const std::map<std::string, Tensor>& params = {});

  size_t cache_size() const { return cache_.size(); }
  // The plan used for the inputs' signature (builds it if needed), e.g. to report peak memory.
  const Plan& plan_for(const std::vector<TensorType>& input_types);

 private:
  struct Compiled {
    std::unique_ptr<Graph> graph;
    std::unique_ptr<Executor> executor;
  };
  Compiled& compiled_for(const std::vector<TensorType>& input_types);

  std::vector<std::string> input_names_;
  GraphBuilder builder_;
  PlanOptions options_;
  std::map<std::string, Compiled> cache_;  // keyed by "shape dtype;..." of the inputs
};

}  // namespace gpuml
