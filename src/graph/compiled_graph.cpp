#include "graph/compiled_graph.h"

#include "backend/dispatch.h"
#include "core/error.h"

namespace gpuml {

CompiledGraph::CompiledGraph(std::vector<std::string> input_names, GraphBuilder builder, PlanOptions options)
    : input_names_(std::move(input_names)), builder_(std::move(builder)), options_(std::move(options)) {
  GPUML_CHECK(builder_ != nullptr, "CompiledGraph: needs a builder function");
}

CompiledGraph::Compiled& CompiledGraph::compiled_for(const std::vector<TensorType>& input_types) {
  GPUML_CHECK(input_types.size() == input_names_.size(), "CompiledGraph: {} inputs given, {} expected ({})",
              input_types.size(), input_names_.size(), fmt::join(input_names_, ", "));
  std::string key;
  for (const TensorType& t : input_types) key += fmt::format("{} {};", shape_str(t.shape), t.dtype);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  Compiled c;
  c.graph = std::make_unique<Graph>();
  std::vector<Sym> inputs;
  for (size_t i = 0; i < input_types.size(); ++i) inputs.push_back(c.graph->input(input_names_[i], input_types[i]));
  std::vector<Sym> outputs = builder_(*c.graph, inputs);
  c.executor = std::make_unique<Executor>(plan_graph(*c.graph, outputs, options_));
  return cache_.emplace(key, std::move(c)).first->second;
}

const Plan& CompiledGraph::plan_for(const std::vector<TensorType>& input_types) {
  return compiled_for(input_types).executor->plan();
}

std::vector<Tensor> CompiledGraph::run(const std::vector<Tensor>& inputs, const std::map<std::string, Tensor>& params) {
  std::vector<TensorType> types;
  for (const Tensor& t : inputs) types.push_back(type_of(t));
  Compiled& c = compiled_for(types);
  std::map<std::string, Tensor> feeds = params;
  for (size_t i = 0; i < inputs.size(); ++i) {
    GPUML_CHECK(!feeds.count(input_names_[i]), "CompiledGraph: '{}' is both an input and a param", input_names_[i]);
    feeds[input_names_[i]] = inputs[i];
  }
  return c.executor->run(feeds);
}

}  // namespace gpuml
