// Fusion: the passes that find chains of graph nodes to run as one fused step, and what they
// hand the planner. Graph builders and autodiff never see fused ops; only the planner makes them.
//
//   FusionInput in(graph, needed, outputs, placement);
//   FusionPlan fusions = find_fusions(in);              // every pass of fusion_passes(), in order
//   if (auto it = fusions.steps.find(id); it != fusions.steps.end()) { ... emit it->second ... }
//
// A pass reads the graph (FusionInput, the same for every pass) and `taken`: the graph nodes that
// earlier passes already put inside their steps, which it must leave alone. It returns what it
// claims (Fusions); find_fusions merges the claims and fails loudly (Internal) if two passes
// claim one node. That is the only thing passes learn from each other, so the order of
// fusion_passes() matters only through `taken`, and each pass's file says what it needs of it.
#pragma once

#include <map>
#include <span>
#include <vector>

#include "graph/graph.h"
#include "graph/placement.h"

namespace gpuml {

// A step that stands for the graph node it is keyed on and computes it from graph values a, b and
// extra: matmul_bias_act / conv2d_bias_act (extra: the bias, which may need a reshape to (N,) /
// (O,)), or matmul_dact (extra: the aux, relu's output or gelu's input).
struct FusedStep {
  OpId op;
  int a, b, extra;  // graph ids
  Attrs attrs;
};

// The bias's shape as matmul_bias_act / conv2d_bias_act read it, for a step whose output is `out`:
// (N,) or (O,).
Shape fused_bias_shape(OpId op, const TensorType& out);
// What placement asks about the fused step standing for graph node `id`: the types its kernel
// sees (a bias flattened to fused_bias_shape) and its attributes.
OpQuery fused_query(const Graph& graph, int id, const FusedStep& step);

// A weight-gradient matmul and the bias-gradient row sum of the same gradient g, run as one
// matmul_bgrad step whose two outputs are the two graph values. Keyed on the earlier of the two.
struct BgradPair {
  int matmul, sum, axis;  // graph ids; axis: which matmul input is g
};

// What placement asks about the pair's matmul_bgrad step.
OpQuery bgrad_query(const Graph& graph, const BgradPair& pair);

// What the passes read: the graph and which of its nodes the plan needs, how often each value is
// read, and where kernels would run. Built once; no pass changes it.
struct FusionInput {
  FusionInput(const Graph& graph, const std::vector<bool>& needed, const std::vector<Sym>& outputs,
              const Placement& placement);
  const Graph& graph;
  const std::vector<bool>& needed;  // graph id -> some output needs it
  std::vector<int> uses;            // graph id -> readers among needed nodes, +1 if it is an output
  std::vector<int> user;            // graph id -> its last needed reader (-1: none)
  const Placement& placement;

  // Whether graph node `id` (-1: none) is an `op` node.
  bool is_op(int id, OpId op) const;
  // Whether graph node `id` is a matmul of two matrices (the only kind the epilogues take).
  bool is_2d_matmul(int id) const;
};

// What one pass claims: the steps it makes and the graph nodes those steps compute inside them
// (which the planner then does not plan on their own).
struct Fusions {
  std::map<int, FusedStep> steps;        // graph id the step stands for -> the step
  std::map<int, BgradPair> bgrad_pairs;  // graph id of the pair's first node -> the pair
  std::vector<int> absorbed;             // graph ids computed inside these steps
};

// Every pass's claims, merged: what the planner emits.
struct FusionPlan {
  std::map<int, FusedStep> steps;
  std::map<int, BgradPair> bgrad_pairs;
  std::vector<bool> absorbed;  // graph id -> computed inside a fused step, not planned itself

  // Adds a pass's claims; throws Internal where they overlap claims already made (a node
  // absorbed twice, or a step keyed on a node another step computes).
  void merge(const Fusions& claims, const char* pass);
};

// taken: graph id -> inside a step of an earlier pass.
using FusionPass = Fusions (*)(const FusionInput& in, const std::vector<bool>& taken);
struct FusionPassEntry {
  const char* name;
  FusionPass run;
};

// The passes, in the order they run (the one list: a new pass is a file and a row here).
std::span<const FusionPassEntry> fusion_passes();

// Runs every pass and merges their claims.
FusionPlan find_fusions(const FusionInput& in);

}  // namespace gpuml
