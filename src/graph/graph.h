// The graph IR: a list of nodes in build order (every node's inputs come before it). Inputs and
// params are named leaves fed at run time; every other node is an op from the op table whose
// type rule ran when it was emitted, so a shape mismatch surfaces while building, not running.
//
//   Graph g;
//   Sym x = g.input("x", {{64, 784}, DType::f32});
//   Sym w = g.param("w", {{10, 784}, DType::f32});
//   Sym logits = matmul(x, w, false, /*trans_b*/ true);   // node 2, type (64, 10) f32
//   fmt::print("{}\n", g.node(logits.id).type.shape);
//
// Ops with several outputs (op_info(op).outputs; matmul_bgrad's weight and bias gradients, later
// attention's (O, logsumexp)) take one value id per output, consecutive: the Op node itself is
// output 0, and an OpOutput node right after it stands for each further output (its input: the
// Op node; output_index: which). So every value is still a node, and everything indexed by value
// id (the planner's value map, autodiff's gradients, fusion's use counts, a Sym) stays as it is
// for single-output ops; only the code that emits, plans or differentiates an op asks for its
// other outputs (output_count). The alternative, a value id naming (node, output index), would
// have changed every one of those tables for the sake of a few ops.
//
//   std::vector<Sym> dw_db = emit_outputs(OpId::matmul_bgrad, {g, x}, attrs);  // ids n, n + 1
//   g.node(dw_db[1].id).role == NodeRole::OpOutput;  // output_index 1, inputs {n}
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "ops/build.h"

namespace gpuml {

enum class NodeRole { Input, Param, Op, OpOutput };

struct Node {
  NodeRole role = NodeRole::Op;
  OpId op = OpId::copy;  // meaningful for Op nodes only
  Attrs attrs;
  std::vector<int> inputs;  // value ids of earlier nodes; OpOutput: {the Op node}
  TensorType type;
  std::string name;       // Input/Param: the feed name; Op: empty
  int output_index = 0;   // OpOutput: which output of its Op node it is (1 ..)
};

class Graph : public Emitter {
 public:
  Graph() = default;
  // Not copied or moved (Emitter): Syms hold this graph's handle. Destroying the graph makes
  // using its Syms an Invalid error ("this value's graph no longer exists").

  Sym input(const std::string& name, const TensorType& type);
  Sym param(const std::string& name, const TensorType& type);

  int emit(OpId op, const std::vector<int>& inputs, const Attrs& attrs) override;
  // Mixed precision for the nodes emitted from now on (ops/build.h); off by default.
  Autocast autocast() const override { return autocast_; }
  void set_autocast(Autocast mode) { autocast_ = mode; }
  const TensorType& type_of(int value) const override;

  int size() const { return static_cast<int>(nodes_.size()); }
  const Node& node(int id) const;
  // How many values node `id` gives: op_info(op).outputs for an Op node, else 1. They are the
  // value ids id .. id + count - 1.
  int output_count(int id) const;
  Sym sym(int id) { return Sym(*this, id); }
  // The id of the Input/Param named `name`, or -1.
  int find_leaf(const std::string& name) const;
  // "%3 = matmul(%1, %2) (64, 10) f32" per line ("%4 = output 1 of %3 ..."), for debugging and
  // error messages.
  std::string to_string() const;

 private:
  Sym add_leaf(NodeRole role, const std::string& name, const TensorType& type);
  // A deque, so that emitting never moves existing nodes: Sym::shape() hands out references
  // that gradient rules hold while they emit more nodes.
  std::deque<Node> nodes_;
  Autocast autocast_ = Autocast::off;
};

}  // namespace gpuml
