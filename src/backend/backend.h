// The backend interface: memory, copies, streams/events, and one kernel slot per op in the op
// table. Backends register kernels into slots and answer supports(op, dtype), and for a whole
// step (shapes and attributes too) supports(OpQuery) where a kernel registered a shape limit; an
// empty slot or a refused step means "run this on another backend" (the planner places it and
// makes the copy explicit).
//
//   Backend& cpu = backend_registry().get("cpu");
//   if (cpu.supports(OpId::matmul, DType::f32)) { ... }
//   if (cpu.supports(OpQuery{OpId::matmul, {a_type, b_type}, out_type, attrs})) { ... }
//   Tensor y = run_op(cpu, OpId::relu, {x});          // eager call (backend/dispatch.h)
//
// Execution is asynchronous by contract: a kernel is enqueued on a stream and may still be
// running when it returns. Host backends run synchronously and ignore streams; callers that read
// results must synchronize() first, so that code written against host backends also holds on CUDA.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/storage.h"
#include "core/tensor.h"
#include "ops/attrs.h"
#include "ops/op_table.h"
#include "ops/type_rules.h"

namespace gpuml {

class Backend;
class Communicator;

// What a collective op's kernel (all_reduce_sum) reaches the job's other processes through
// (backend/communicator.h), and how long each call waits for them. No communicator: one
// process, and the op is the identity.
struct KernelCollectives {
  Communicator* communicator = nullptr;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

// An ordered queue of work on one backend (a cudaStream_t on CUDA). Opaque above the backend.
class Stream {
 public:
  virtual ~Stream() = default;
};
// A point in a stream that another stream (or the host) can wait for.
class Event {
 public:
  virtual ~Event() = default;
};

struct KernelCall {
  Backend& backend;
  std::span<const Tensor> inputs;  // on the backend's device; strided unless the slot says otherwise
  const Tensor& output;            // contiguous, allocated by the caller, of infer_type's type
  const Attrs& attrs;
  Stream* stream = nullptr;  // nullptr: the backend's default stream
  // Random ops (dropout, uniform, normal): a uint64 in this backend's memory added to
  // attrs.offset, read when the kernel runs rather than when it is enqueued, so that captured
  // work replays with a new offset each time (Executor, RunOptions::replay). nullptr: none.
  const void* offset_slot = nullptr;
  // Outputs 1.. of an op with several (op_info(op).outputs; matmul_bgrad: the bias gradient), each
  // like `output`: contiguous, allocated by the caller, of infer_types's type. Empty for the rest.
  std::span<const Tensor> extra_outputs = {};
  // Collective ops: the communicator (RunOptions::collectives). nullptr: one process.
  const KernelCollectives* collectives = nullptr;
};

// attrs.offset plus the slot's value, for host kernels (device kernels read the slot themselves).
inline uint64_t philox_offset(const KernelCall& call) {
  return call.attrs.offset + (call.offset_slot ? *static_cast<const uint64_t*>(call.offset_slot) : 0);
}

// Work recorded once (a CUDA graph) and run again with the same memory bindings by replay().
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  // Enqueues the recorded work on the backend's default stream.
  virtual void replay() = 0;
};

using KernelFn = void (*)(const KernelCall& call);

// What placement asks a backend about one step: the op, the types its kernel would see and its
// attributes (`output`: output 0's type; the others follow from the inputs and attributes). It
// owns its parts, so a query outlives the graph or plan it was made from.
struct OpQuery {
  OpId op = OpId::copy;
  std::vector<TensorType> inputs;
  TensorType output;
  Attrs attrs;
};
// A kernel's limit beyond its dtypes (a leading dimension an epilogue needs, a head dimension it
// lacks): false means "not this step", so the planner places it elsewhere, or leaves it unfused,
// as a decision it shows in the plan instead of a fallback hidden in the kernel.
using ShapePredicate = bool (*)(const OpQuery& query);

class Backend : public Allocator {
 public:
  ~Backend() override = default;
  virtual std::string_view name() const = 0;
  // One line for `gpuml info`: library versions, threads, features.
  virtual std::string description() const = 0;

  // Copies, ordered on `stream`. dst/src are raw pointers into this backend's memory or host memory.
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes, Stream* stream = nullptr);
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes, Stream* stream = nullptr);
  virtual void copy_within(void* dst, const void* src, size_t bytes, Stream* stream = nullptr);

  virtual std::unique_ptr<Stream> create_stream() { return std::make_unique<Stream>(); }
  virtual std::unique_ptr<Event> record_event(Stream* stream) { return std::make_unique<Event>(); }
  virtual void wait_event(Stream* stream, const Event& event) {}
  virtual void synchronize(Stream* stream = nullptr) {}
  // Throws the first error that kernels found on the device since the last call (a label or an
  // index out of range) and forgets the rest. Device kernels record such errors in device memory
  // instead of reading a flag back mid-step (a sync per check); the executor and run_op call this
  // after their final synchronize. Host backends throw from the kernel itself: nothing to do.
  virtual void check_deferred_errors() {}
  // Caps the memory this backend may hold (--gpu-memory-limit); 0 = no cap. Host backends ignore it.
  virtual void set_memory_limit(size_t bytes) {}
  // Page-locked host memory this device can copy from asynchronously (cudaHostAlloc), for host
  // buffers copied to it over and over (the loaders' batches); nullptr on host backends.
  virtual Allocator* pinned_host_allocator() { return nullptr; }

  // Capture (CUDA graphs): between begin_capture() and end_capture(), the work that the calling
  // thread enqueues on the default stream is recorded instead of run; end_capture() returns it
  // for replay. A kernel that cannot be captured (one that would allocate memory that outlives
  // the capture, or synchronize) throws; the caller then calls abort_capture(), which discards
  // the recording. Host backends cannot capture: begin_capture() throws Unsupported.
  virtual bool can_capture() const { return false; }
  virtual void begin_capture();
  virtual std::unique_ptr<CapturedWork> end_capture();
  virtual void abort_capture() noexcept {}

  // The cheap table: a kernel registered for (op, dtype), whatever the shapes.
  bool supports(OpId op, DType dtype) const;
  // The table for the query's dispatch dtype, and the op's shape predicate if it has one. The
  // planner places with this; run() refuses a call it would answer false to.
  bool supports(const OpQuery& query) const;
  // Whether the kernel for `op` reads strided (non-contiguous) inputs; if not, the planner
  // inserts an explicit `copy` to make them contiguous.
  bool accepts_strided_inputs(OpId op) const;
  std::vector<DType> supported_dtypes(OpId op) const;
  // Runs the kernel; throws Unsupported (naming op, dtype and backend) when the slot is empty or
  // the op's shape predicate refuses the call's shapes and attributes.
  void run(OpId op, const KernelCall& call) const;

 protected:
  void register_kernel(OpId op, KernelFn fn, std::initializer_list<DType> dtypes, bool strided_inputs = true);
  // Limits the op's kernel (registered or not yet) to the steps `accepts` answers true for.
  void register_shape_limit(OpId op, ShapePredicate accepts);

 private:
  struct Slot {
    KernelFn fn = nullptr;
    uint32_t dtype_mask = 0;
    bool strided_inputs = true;
    ShapePredicate accepts = nullptr;  // nullptr: every shape the dtype table allows
  };
  std::array<Slot, kNumOps> slots_{};
};

// The dtype a backend's supports() is asked about: the first input's, or the output's for
// creation ops. Cast is keyed on its input dtype; its kernel handles every output dtype.
DType dispatch_dtype_of(OpId op, std::span<const TensorType> inputs, const TensorType& output);

// The query for a call about to run: its tensors' types and its attributes.
OpQuery query_of(OpId op, const KernelCall& call);

// The one global: backends by name, in order of preference (fastest first).
// The backends of this process: cpu and ref from the start, the CUDA plugin's (one per GPU, first
// in order) loaded on first need only: when a name "cuda..." is asked for, or every backend
// (all(), which --device auto and `gpuml info` use), or the CUDA status. --device cpu never
// loads it, so it gets no CUDA context, handles or pinned memory on every GPU.
class BackendRegistry {
 public:
  void add(std::unique_ptr<Backend> backend);
  Backend& get(std::string_view name) const;  // throws Invalid, listing the names there are
  Backend* find(std::string_view name) const;  // loads the CUDA plugin for a "cuda..." name
  std::vector<Backend*> all() const;           // loads the CUDA plugin
  std::vector<Backend*> loaded() const;        // what is loaded now (loads nothing)
  // The reference backend, which supports every op: where everything can fall back to.
  Backend& reference() const { return get("ref"); }
  // Why the CUDA backend is or is not there ("loaded from ...", "not used: no CUDA driver ..."),
  // after trying to load it; `gpuml info` and --device cuda report it.
  const std::string& cuda_status() const;
  bool cuda_tried() const { return cuda_tried_.load(); }

 private:
  void load_cuda() const;
  std::vector<std::unique_ptr<Backend>> backends_;  // host backends, in order
  // Written once under cuda_once_, read only after it (cuda_tried_).
  mutable std::vector<std::unique_ptr<Backend>> cuda_backends_;
  mutable std::string cuda_status_ = "not tried";
  mutable std::once_flag cuda_once_;
  mutable std::atomic<bool> cuda_tried_{false};
};

// Registers, on first use, the CUDA plugin's backends when it loads (backend/plugin_loader.h),
// then cpu and ref.
BackendRegistry& backend_registry();

}  // namespace gpuml
