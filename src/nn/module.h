// The Module interface: a layer that knows its parameters (names, shapes, PyTorch's state_dict
// order), how to initialise them, its per-sample output shape and cost, and how to emit its
// forward pass into a Graph. Modules hold configuration only, never tensors: the values live
// outside (a map by state_dict name, or views of the optimizer state) and reach forward() through
// ForwardContext::value.
//
//   Linear fc(784, 256);
//   std::vector<ParamInfo> infos;
//   fc.params("fc1", infos);                        // fc1.weight (256, 784), fc1.bias (256)
//   Graph g;
//   Sym x = g.input("x", {{64, 784}, DType::f32});
//   std::map<std::string, Sym> leaves = declare_params(g, infos);
//   ForwardContext ctx{g, /*training*/ true, [&](const std::string& n) { return leaves.at(n); }};
//   Sym y = fc.forward(x, ctx, "fc1");              // (64, 256)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "nn/init.h"

namespace gpuml::nn {

// One entry of the state_dict. Buffers (BatchNorm running stats, num_batches_tracked) are
// trainable=false: they are fed and updated, never differentiated.
struct ParamInfo {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  bool trainable = true;
};

struct ForwardContext {
  ForwardContext(Graph& g, bool is_training, std::function<Sym(const std::string&)> value_of)
      : graph(g), training(is_training), value(std::move(value_of)) {}

  Graph& graph;
  bool training = true;
  // The Sym of a parameter or buffer by its full state_dict name ("3.weight").
  std::function<Sym(const std::string& full_name)> value;
  // (full buffer name, its new value): training-mode BatchNorm pushes running_mean, running_var
  // and num_batches_tracked here; the caller makes them graph outputs.
  std::vector<std::pair<std::string, Sym>> buffer_updates;
  // Dropout layers draw from Philox stream (dropout_seed, rng_offset) and advance rng_offset by
  // philox_blocks(numel), so two dropouts in one step never share random numbers.
  uint64_t dropout_seed = 0;
  uint64_t rng_offset = 0;
  // Training-mode BatchNorm normalises with statistics over every rank's batch (all_reduce_sum
  // ops, which need RunOptions::collectives when the graph runs) instead of this batch's alone:
  // --sync-batchnorm under data parallelism.
  bool sync_batch_norm = false;

  // value(name), checked to exist and have `shape`: a wiring mistake fails while building.
  Sym get(const std::string& full_name, const Shape& shape) const;
};

// Cost counting for flops(): a multiply-add is 2 flops; bias adds, activations and norms count
// 1 flop per element per arithmetic step. Movement (flatten, dropout in eval) counts 0.
class Module {
 public:
  virtual ~Module() = default;
  virtual std::string type_name() const = 0;  // "Linear", as in the model JSON
  // x is batched: (N, per-sample...). `prefix` is this module's state_dict prefix ("" at the root).
  virtual Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const = 0;
  // Appends this module's state_dict entries, in PyTorch's order.
  virtual void params(const std::string& prefix, std::vector<ParamInfo>& out) const {}
  // Weight tying: (alias, source) full names of parameters this module reads under another
  // entry's name (a GPT's head.weight is wte.weight). An alias is no entry of params(): it has no
  // value, gradient or optimizer state of its own, so gradients of both uses add up in the source.
  // Weight files written for PyTorch carry it too (torch's state_dict lists both names).
  virtual void ties(const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) const {}
  // Draws this module's entries, in the same order as params() (init.h explains the streams).
  virtual void init(const std::string& prefix, ParamInitializer& initializer) const {}
  // Per-sample shapes (no batch dim); throws ErrorKind::Invalid saying what does not fit.
  virtual Shape output_shape(const Shape& in) const { return in; }
  virtual int64_t flops(const Shape& in) const { return 0; }
  virtual std::string describe() const = 0;  // "Linear(784 -> 256)"
  virtual nlohmann::json to_json() const;    // {"type": ...} plus this module's fields
};

// "prefix.name", or "name" at the root.
std::string join_name(const std::string& prefix, const std::string& name);

// A graph param per entry, named by its full state_dict name.
std::map<std::string, Sym> declare_params(Graph& graph, const std::vector<ParamInfo>& infos);

}  // namespace gpuml::nn
