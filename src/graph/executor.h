// Runs a Plan: allocates each device arena once, then for every run binds the feeds, runs the
// steps in order and returns the outputs as fresh host tensors (they survive the next run).
//
//   Graph g;
//   Sym x = g.input("x", {{2, 3}, DType::f32});
//   Sym y = relu(x);
//   Executor ex(plan_graph(g, {y}));
//   std::vector<Tensor> out = ex.run({{"x", Tensor::from_values({2, 3}, values, DType::f32)}});
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graph/planner.h"

namespace gpuml {

struct RunOptions {
  // Added to the Philox offset of every op that draws (dropout, uniform, normal, attention and its
  // backward: draws_philox), so that each training step draws new numbers from one cached plan.
  uint64_t rng_offset = 0;
  // Output index -> a tensor the kernel writes that output into directly, instead of the arena
  // plus a copy out (e.g. the optimizer's new state, ping-ponged between two buffers). It must be
  // contiguous, of the output's exact type, on the output's device, and must not share memory
  // with any feed. Outputs that a view or transfer produces are copied into it instead.
  std::map<int, Tensor> output_buffers;
  // Capture the run's kernels once as one unit of work (a CUDA graph) and replay it on later runs:
  // one launch per step instead of one per kernel. Takes effect where every kernel step of the
  // plan runs on one backend that can capture (Backend::can_capture; not CPUs), and not under
  // GPUML_PROFILE=1; elsewhere the run is eager, as without it. The first such run is eager (it
  // finds algorithms and grows workspaces), the next one captures. Device-resident contiguous
  // feeds and donated output buffers are bound by address: each distinct set of addresses gets
  // its own capture (the optimizer state's two buffers: two), up to kMaxCaptures, then runs are
  // eager. Other feeds are copied into fixed device slots each run. If a kernel cannot be
  // captured, the run is redone eagerly and so are later runs (replay_note() says why).
  bool replay = false;
  // Outputs handed to `on_output_ready(index, value)` as soon as the step that writes them has run,
  // while later steps are still to come: a data-parallel step copies each parameter's gradient out
  // and starts its all-reduce during the rest of backward. The value is the plan's own memory
  // (an arena range, valid until run() returns; on an asynchronous backend, order a read after the
  // work queued so far, e.g. Backend::synchronize). A replayed run calls it for each after the
  // replay, in step order. run() returns an undefined Tensor in their place (nothing copied out).
  // An exception from the callback ends the run as a failing kernel would.
  std::set<int> ready_outputs;
  std::function<void(int output, const Tensor& value)> on_output_ready;
  // Collective ops (all_reduce_sum) reach the job's other processes through this communicator
  // (data parallelism: every rank runs the same plan, so their collectives pair up in order).
  // No communicator: one process, each such op the identity.
  KernelCollectives collectives;
};

struct ReplayStats {
  int64_t captures = 0;  // units of work captured
  int64_t replays = 0;   // runs served by replaying one (the capturing run included)
  int64_t eager = 0;     // runs with RunOptions::replay that ran eagerly (warm-up, fallbacks)
};

class Executor {
 public:
  explicit Executor(Plan plan);
  // With GPUML_PROFILE=1 in the environment, prints the time spent per op (to stderr).
  ~Executor();

  // Every Input and Param of the plan must be fed, with its exact shape and dtype; feeds may be
  // strided or live on another device (they are copied to where the plan wants them).
  std::vector<Tensor> run(const std::map<std::string, Tensor>& feeds, const RunOptions& options = {});

  // Starts copying the feeds that the plan keeps on a device (a training step's next batch)
  // there, on that device's copy stream and into memory of their own, so that the copy overlaps
  // whatever the device runs meanwhile. A later run() fed the same host tensor (same memory)
  // makes the device wait for that copy instead of copying again. The host tensor must stay
  // unchanged until that run() returns. Feeds the plan keeps on the host are ignored: on CPU this
  // does nothing.
  void stage(const std::map<std::string, Tensor>& feeds);
  // Feeds copied by stage() and not yet consumed by run(), for tests. Each feed keeps its
  // kMaxStaged newest copies; run() takes the one of the tensor it is fed and drops older ones.
  size_t staged_count() const;
  static constexpr size_t kMaxStaged = 2;

  const Plan& plan() const { return plan_; }
  static constexpr size_t kMaxCaptures = 4;
  const ReplayStats& replay_stats() const { return replay_stats_; }
  // Why runs asked to replay run eagerly ("" while replay works): the plan does not suit it, or
  // a capture failed.
  const std::string& replay_note() const { return replay_note_; }
  // Bytes held by the arenas: what plan().peak_bytes() promised.
  size_t arena_bytes() const;

 private:
  void bind_feeds(const std::map<std::string, Tensor>& feeds);
  // Binds feeds for a replayable run: by address or copied into their slots (RunOptions::replay),
  // and writes the rng offset into its slot.
  void bind_feeds_for_replay(const std::map<std::string, Tensor>& feeds, uint64_t rng_offset);
  // A feed, checked against the plan's value `i`.
  const Tensor& checked_feed(const std::map<std::string, Tensor>& feeds, size_t i) const;
  // Random kernels get `rng_offset` added to their attrs, or (replay mode) read it from rng_slot_.
  void run_step(const PlanStep& step, uint64_t rng_offset, bool replay_mode);
  // Runs every step in order; `used` collects the backends that ran one (also when one throws).
  void run_steps(uint64_t rng_offset, std::set<Backend*>& used, bool replay_mode = false);
  // RunOptions::ready_outputs by the step after which each is final (-1: before the first step).
  void index_ready_outputs(const RunOptions& options);
  void call_ready_outputs(int step);
  // Replays the capture for the current bindings, or runs eagerly (warm-up) or captures.
  void run_replayed(std::set<Backend*>& used);
  // Points donated outputs at the caller's buffers; returns the outputs to copy in afterwards.
  std::map<int, Tensor> bind_output_buffers(const RunOptions& options, const std::map<std::string, Tensor>& feeds);

  struct Staged {
    const void* host = nullptr;  // the feed's memory, which identifies it in run()
    Tensor device;               // its copy, on the value's backend
    std::unique_ptr<Event> copied;
  };
  // Drops the value's staged copies (of `host` only, unless null), ordering each copy before its
  // memory can be reused.
  void drop_staged(int value, const void* host = nullptr);
  // The staged copy of `host` for the value, if any (the default stream then waits for it).
  std::optional<Tensor> take_staged(int value, const void* host);

  Plan plan_;
  std::map<int, std::vector<Staged>> staged_;  // plan value -> its staged copies, oldest first
  std::map<Backend*, std::unique_ptr<Stream>> copy_streams_;
  std::vector<std::shared_ptr<Storage>> arenas_;
  std::vector<Tensor> values_;  // one per plan value; arena tensors made once, the rest per run
  std::vector<Tensor> arena_values_;  // the arena tensors, to restore after a donated-output run
  std::vector<int> producer_;         // plan value -> index of the step that writes it, or -1
  // The current run's RunOptions::ready_outputs: step index -> outputs final after it.
  std::map<int, std::vector<int>> ready_after_step_;
  const std::function<void(int, const Tensor&)>* on_output_ready_ = nullptr;
  bool profile_ = false;
  bool profile_shapes_ = false;  // GPUML_PROFILE=shapes: rows by op and input types
  const KernelCollectives* collectives_ = nullptr;  // RunOptions::collectives during run(), if any
  std::map<std::string, std::pair<double, int64_t>> op_seconds_;  // op -> (seconds, calls)

  // Replay (RunOptions::replay). The captures read the arenas, slots and bound buffers: they are
  // declared last so that they are destroyed first.
  Backend* capture_backend_ = nullptr;  // the backend of every kernel step, if it can capture
  std::string replay_note_;
  std::map<int, Tensor> feed_slots_;  // External value -> its fixed copy on capture_backend_
  Tensor rng_slot_;                   // one uint64 on capture_backend_ (KernelCall::offset_slot)
  std::vector<const void*> run_key_;  // the current run's bindings
  bool warmed_up_ = false;
  ReplayStats replay_stats_;
  std::map<std::vector<const void*>, std::unique_ptr<CapturedWork>> captures_;
};

}  // namespace gpuml
