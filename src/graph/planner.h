// The planner turns a graph into a Plan: an ordered list of steps, each placed on a backend, and
// one memory arena per device whose size (peak_bytes) is known before anything runs.
//
//   Graph g;  ...  Sym loss = ...;
//   Plan plan = plan_graph(g, {loss}, {});              // backends: registry order (cpu, ref)
//   fmt::print("peak {} bytes, {} without reuse\n", plan.peak_bytes(), plan.unshared_bytes());
//   Executor ex(std::move(plan));                       // graph/executor.h
//
// What the planner decides:
//  - only nodes that some output needs are planned;
//  - each op runs on the first backend that supports (op, dtype); a value produced on one backend
//    and read on another gets an explicit Transfer step. Between backends on the same device the
//    transfer re-homes the value without a copy (an alias); across devices it copies into the
//    destination's arena, so a device backend (CUDA) needs nothing special;
//  - reshape of a contiguous value, permute, slice and broadcast_to are View steps: no kernel, no
//    buffer; the viewed buffer lives as long as its views are used;
//  - a kernel registered without strided-input support gets an explicit contiguous `copy` first;
//  - fusion (PlanOptions::fuse): y = act(matmul(a, b) + bias) with a 2-d matmul and an (N,) bias,
//    or act(conv2d(x, w) + bias) with a per-channel bias, act relu or gelu (or none), becomes one
//    matmul_bias_act / conv2d_bias_act step when the product and the sum are used by nothing else
//    (in training, gelu's backward reads the sum: only the bias fuses); in the backward, a weight
//    gradient matmul(g, x, trans_a) or matmul(x, g) beside the bias gradient sum(g, axis 0)
//    becomes one matmul_bgrad step (cuBLASLt's BGRAD epilogue) with the two as its outputs; and the
//    gradient g W reaching a relu or gelu, read only by relu_backward / gelu_backward, becomes
//    one matmul_dact step (cuBLASLt's DRELU / DGELU epilogue);
//  - every intermediate gets a 64-byte aligned range of its device's arena; buffers whose lifetimes
//    (first def to last use, outputs to the end) do not overlap share memory (greedy best-fit
//    gap, in five orders of the buffers; the lowest peak is kept). Inputs and params are
//    external: fed at run time, never in the arena.
//
// In parts: placement (graph/placement.h), the fusion passes (graph/fusion.h lists them, one file
// each under graph/passes/, each opening with its preconditions), arena packing (graph/arena.h);
// planner.cpp walks the graph and emits the steps, transfers, copies and views between them.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "graph/graph.h"

namespace gpuml {

struct PlanOptions {
  std::vector<Backend*> backends;  // in order of preference; empty: backend_registry().all()
  bool reuse_memory = true;        // false: every buffer gets its own range (for tests)
  // f32 matmul and convolutions may use TF32 tensor cores (--precision tf32): the planner sets
  // Attrs::allow_tf32 on their steps; backends without TF32 (CPUs) compute in f32 as before.
  bool allow_tf32 = false;
  // Every step gets Attrs::deterministic (--deterministic): kernels with a non-deterministic fast
  // form (atomics, timed algorithm choice) take their deterministic form.
  bool deterministic = false;
  // Fuse matmul or conv2d + bias add [+ relu/gelu] into one step (a library epilogue) where
  // the intermediates have no other use and the matmul's backend has the fused kernel.
  bool fuse = true;
};

enum class StepKind { Kernel, View, Transfer };
// External: an input/param fed at run time. Arena: a range of a device arena. Alias: reads the
// memory of `base` (a view, or a value re-homed to another backend of the same device).
enum class ValueHome { External, Arena, Alias };

struct PlanValue {
  TensorType type;
  ValueHome home = ValueHome::Arena;
  Backend* backend = nullptr;  // the backend whose memory holds it
  int graph_node = -1;         // the graph value it computes; -1 for inserted copies/transfers
  std::string name;            // External: the feed name
  int base = -1;               // Alias: the value whose memory it reads
  int arena = -1;              // Arena: index into Plan::arenas
  size_t offset = 0;           // Arena: byte offset in the arena, 64-byte aligned
  size_t bytes = 0;            // Arena: bytes reserved (the tensor's size rounded up to 64)
  int first_step = -1;         // Arena: the step that writes it
  int last_step = -1;          // Arena: the last step that reads it or any alias of it
  Strides strides;             // layout; External and Arena values are contiguous
};

struct PlanStep {
  StepKind kind = StepKind::Kernel;
  OpId op = OpId::copy;      // Kernel/View: the op; Transfer: copy
  Attrs attrs;
  std::vector<int> inputs;   // plan value ids
  int output = -1;           // output 0; a Kernel step of an op with several writes the values
  int output_count = 1;      // output .. output + output_count - 1 (as graph/graph.h numbers them)
  Backend* backend = nullptr;  // Kernel: runs it; Transfer: destination; View: owner of the memory
  Backend* source = nullptr;   // Transfer: where the value comes from
};

struct ArenaPlan {
  Device device;
  Backend* allocator = nullptr;  // the backend that allocates it
  size_t peak_bytes = 0;         // the arena's size: peak of simultaneously live buffers
  size_t unshared_bytes = 0;     // the sum of all its buffers, as if nothing were reused
};

struct Plan {
  std::vector<PlanValue> values;
  std::vector<PlanStep> steps;
  std::vector<int> outputs;  // plan value id per requested output
  std::vector<ArenaPlan> arenas;

  size_t peak_bytes() const;      // over all arenas
  size_t unshared_bytes() const;  // over all arenas
  // The value whose memory `value` reads (itself unless it is an alias).
  int root_of(int value) const;
  std::string to_string() const;
};

Plan plan_graph(const Graph& graph, const std::vector<Sym>& outputs, const PlanOptions& options = {});

// The view that a View step makes: reshape (contiguous input), permute, slice or broadcast_to.
// Works on storage-less tensors too, which is how the planner computes layouts.
Tensor apply_view(const Tensor& t, OpId op, const Attrs& attrs);
bool is_view_op(OpId op);

}  // namespace gpuml
