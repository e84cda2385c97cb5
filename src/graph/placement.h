// Placement: which backend runs a step. Backends are asked in order of preference and the first
// that supports the step runs it: its (op, dtype) and, where the backend registered a shape limit
// for the op, its shapes and attributes (Backend::supports(OpQuery)). A step nobody supports is an
// Unsupported error naming them all. The planner (graph/planner.cpp) places every kernel step
// here, the fusion passes ask whether a fused kernel would run where the unfused op would, and
// arena packing asks which backend allocates a device's arena.
//
//   Placement placement(options);                     // options.backends empty: registry order
//   Backend& b = placement.place(query_of_node(graph, id));
#pragma once

#include <vector>

#include "backend/backend.h"
#include "graph/graph.h"
#include "graph/planner.h"

namespace gpuml {

// The query for graph node `id` as the graph states it: its inputs' and its own types and attrs.
OpQuery query_of_node(const Graph& graph, int id);

class Placement {
 public:
  // options.backends in order of preference (empty: backend_registry().all()); allow_tf32 and
  // deterministic become every step's attributes (step_attrs), which backends see when asked.
  explicit Placement(const PlanOptions& options);

  const std::vector<Backend*>& backends() const { return backends_; }
  // The attributes a kernel step runs with: its own and the plan-wide TF32 and determinism flags.
  Attrs step_attrs(OpId op, Attrs attrs) const;
  // The first backend that supports the step (with step_attrs), or nullptr.
  Backend* first_supporting(const OpQuery& query) const;
  // The first backend that supports the step; throws Unsupported if none does.
  Backend& place(const OpQuery& query) const;
  // Whether the fused step runs on the backend that would run the unfused one: fusing must not
  // move work to another backend (and through transfers, to another device).
  bool fuses_in_place(const OpQuery& fused, const OpQuery& unfused) const;
  // The first backend on `device` that can copy a `type` value (to make a strided value
  // contiguous before it leaves the device), or nullptr.
  Backend* copier_on(const Device& device, const TensorType& type) const;
  // The first backend on `device`: the one that allocates that device's arena.
  Backend* allocator_of(const Device& device) const;

 private:
  std::vector<Backend*> backends_;
  bool allow_tf32_, deterministic_;
};

// The query for a contiguous copy of a `type` value.
OpQuery copy_query(const TensorType& type);

}  // namespace gpuml
