// The CUDA backend: one per GPU, created by the plugin entry point (cuda_plugin.cpp). Memory is
// stream-ordered (cudaMallocAsync on a per-device pool, with an optional cap); host copies go
// through pinned staging buffers; streams and events are CUDA's. Kernel files register into the
// op slots through add_kernel(); an empty slot falls back to the cpu backend (the planner inserts
// the transfers).
//
//   CudaBackend& gpu = cuda_backend_of(call);     // inside a kernel
//   cudaStream_t s = gpu.stream_of(call);
//   void* workspace = gpu.workspace(bytes, "matmul");
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <functional>
#include <atomic>
#include <compare>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "backend/backend.h"

namespace gpuml::cuda {

// Page-locked host memory (cudaHostAlloc, portable across devices): copies from it are a DMA
// that does not hold up the host, with no staging memcpy (copy_to_device checks for it).
class PinnedHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  Device device() const override { return {DeviceType::cpu, 0}; }
};

// A convolution's algorithm and the math type cuDNN's search ran it with (cudnnMathType_t): the
// math type must be set on the descriptor too, or the algorithm runs otherwise than it was timed
// (or is refused).
// What decides cuBLASLt's algorithm for a product: shapes, batch strides, dtype, TF32, transposes,
// the operands' alignment and the epilogue asked for. The heuristic runs once per key.
struct MatmulAlgoKey {
  int64_t m = 0, n = 0, k = 0, batch = 0, a_stride = 0, b_stride = 0, aux_ld = 0;
  int dtype = 0, epilogue = 0;
  bool tf32 = false, trans_a = false, trans_b = false;
  uint32_t align_a = 0, align_b = 0, align_c = 0;
  auto operator<=>(const MatmulAlgoKey&) const = default;
};
struct MatmulAlgoChoice {
  bool found = false;             // false: no algorithm (with the epilogue asked for, or at all)
  bool epilogue_dropped = false;  // the fused epilogue had none: the plain product's algorithm
  cublasLtMatmulAlgo_t algo{};
};

struct ConvChoice {
  int algo = -1;
  int math = 0;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;
  std::string_view name() const override { return name_; }
  std::string description() const override { return description_; }
  Device device() const override { return {DeviceType::cuda, device_index_}; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void set_memory_limit(size_t bytes) override { limit_ = bytes; }
  Allocator* pinned_host_allocator() override { return &pinned_; }

  void copy_to_device(void* dst, const void* host_src, size_t bytes, Stream* stream = nullptr) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes, Stream* stream = nullptr) override;
  void copy_within(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) override;
  std::unique_ptr<Stream> create_stream() override;
  std::unique_ptr<Event> record_event(Stream* stream) override;
  void wait_event(Stream* stream, const Event& event) override;
  void synchronize(Stream* stream = nullptr) override;

  // CUDA graphs: the thread that calls begin_capture() enqueues on a capture stream instead of
  // the default stream until end_capture(), which instantiates the graph; replay() launches it on
  // the default stream. Kernels must not allocate memory that outlives the capture (check_flag()
  // gives deferred checks theirs), grow the workspace, or search for cuDNN algorithms then.
  bool can_capture() const override;  // not under GPUML_CUDA_SYNC (a capture cannot synchronize)
  void begin_capture() override;
  std::unique_ptr<CapturedWork> end_capture() override;
  void abort_capture() noexcept override;
  // Whether the calling thread is capturing on this backend.
  bool capturing() const;
  // Two int64 of device memory for a deferred check (defer_check): a fresh tensor, or while
  // capturing, a slot of memory that the graph keeps for all its replays.
  Tensor check_flag();

  // The stream a kernel runs on; also makes this backend's device current for the calling thread
  // (kernels, cuBLASLt and cuDNN use the current device).
  cudaStream_t stream_of(const KernelCall& call) const {
    activate();
    return raw_stream(call.stream);
  }
  cudaStream_t raw_stream(Stream* stream) const;
  // Scratch memory for one kernel (cuBLASLt/cuDNN workspaces), grown on demand, ordered on the
  // default stream. `op` names the kernel in the out-of-memory error.
  void* workspace(size_t bytes, const char* op);
  // Bytes that may still be allocated: free device memory, within --gpu-memory-limit.
  size_t memory_budget() const;
  // Returns the pool's cached free memory to the device (before cuDNN's Find, which allocates
  // with cudaMalloc outside the pool).
  void release_cached_memory();
  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  // cuDNN algorithm choices per convolution shape, found once (conv kernels own the keys).
  std::map<std::string, ConvChoice>& conv_algorithms() { return conv_algorithms_; }
  // cuBLASLt's choices per product (guarded by mutex()).
  std::map<MatmulAlgoKey, MatmulAlgoChoice>& matmul_algorithms() { return matmul_algorithms_; }
  std::mutex& mutex() { return mutex_; }
  // Whether cuBLASLt's DRELU epilogue reads our relu mask layout on this device: probed before the
  // first matmul_dact with relu (cuda_matmul.cpp), then kept for the backend's life. The
  // backend's, not the process's: each device (and whoever owns the backend) gets its own answer.
  enum class DreluState { untried, trusted, refused };
  std::atomic<DreluState>& drelu_state() { return drelu_state_; }
  std::mutex& drelu_mutex() { return drelu_mutex_; }  // held while probing

  void add_kernel(OpId op, KernelFn fn, std::initializer_list<DType> dtypes, bool strided_inputs = true) {
    register_kernel(op, fn, dtypes, strided_inputs);
  }
  void add_shape_limit(OpId op, ShapePredicate accepts) { register_shape_limit(op, accepts); }
  // Throws the OutOfMemory error: the op, the bytes asked for, what is free and what to try.
  [[noreturn]] void throw_out_of_memory(const char* op, size_t bytes) const;

  // A check that a kernel made on the device, read at the end of the run (check_deferred_errors):
  // `flag` holds two int64, the first bad row (or -1) and the bad value there; `message` turns
  // them into the error.
  using DeferredMessage = std::function<std::string(int64_t row, int64_t value)>;
  void defer_check(Tensor flag, DeferredMessage message);
  void check_deferred_errors() override;
  void note_unthrown_error(const char* what, cudaError_t e);

 private:
  friend class CudaGraph;
  void activate() const;  // cudaSetDevice: every call may come from any host thread
  // Launches a captured graph and registers its deferred checks (CudaGraph::replay).
  void launch_graph(cudaGraphExec_t exec, const std::vector<std::pair<Tensor, DeferredMessage>>& checks);
  int device_index_;
  std::string name_, description_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;
  cudaStream_t capture_stream_ = nullptr;  // what the capturing thread's kernels enqueue on
  static constexpr int64_t kCaptureChecks = 64;
  Tensor capture_flags_;                    // kCaptureChecks flags, allocated before the capture
  int64_t capture_flags_used_ = 0;
  std::vector<std::pair<Tensor, DeferredMessage>> capture_checks_;  // the checks the capture made
  // Graphs alive or being captured: while any, a workspace that grows is retired, not freed
  // (graphs use it); the last graph to go frees the retired ones.
  std::atomic<int> live_graphs_{0};
  std::vector<std::pair<void*, size_t>> retired_workspaces_;  // guarded by workspace_mutex_
  void graph_released();
  // One capture at a time per backend (the capture stream, flags and checks are the backend's):
  // locked by begin_capture, unlocked by end_capture/abort_capture on the same thread.
  std::mutex capture_mutex_;
  std::set<void*> capture_allocations_;  // allocated during the capture: graph memory
  // Memory from before the capture whose last user let go during it: a graph may not free it
  // (cudaFreeAsync in a capture takes graph allocations only), so it is freed after.
  std::vector<void*> frees_after_capture_;
  void finish_capture();
  size_t limit_ = 0, in_use_ = 0;
  PinnedHostAllocator pinned_;
  // Two pinned staging buffers: one is filled while the other is copied (copy_to_device).
  static constexpr size_t kStagingBytes = size_t{8} << 20;
  void* staging_[2] = {nullptr, nullptr};
  cudaEvent_t staging_done_[2] = {nullptr, nullptr};
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  cublasLtHandle_t cublaslt_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  std::map<std::string, ConvChoice> conv_algorithms_;
  std::map<MatmulAlgoKey, MatmulAlgoChoice> matmul_algorithms_;
  std::mutex mutex_;
  std::atomic<DreluState> drelu_state_{DreluState::untried};
  std::mutex drelu_mutex_;
  std::mutex workspace_mutex_;  // workspace(): allocate() takes mutex_
  std::mutex unthrown_mutex_;
  std::string unthrown_error_;  // the first error of a call that could not throw (note_unthrown_error)
  std::vector<std::pair<Tensor, DeferredMessage>> deferred_;  // guarded by mutex_
};

inline CudaBackend& cuda_backend_of(const KernelCall& call) { return static_cast<CudaBackend&>(call.backend); }

// One registration function per kernel family (one file each).
void register_elementwise_kernels(CudaBackend& backend);  // cuda_register_elementwise.cpp
void register_reduce_kernels(CudaBackend& backend);       // cuda_register_reduce.cpp
void register_nn_kernels(CudaBackend& backend);           // cuda_register_nn.cpp: norms, losses, pools, random, gather, optim
void register_matmul_kernels(CudaBackend& backend);       // cuda_matmul.cpp
void register_conv_kernels(CudaBackend& backend);         // cuda_conv.cpp
void register_attention_kernels(CudaBackend& backend);    // cuda_attention.cpp

}  // namespace gpuml::cuda
