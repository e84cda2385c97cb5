#include "backend/cuda/cuda_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "backend/cuda/cuda_glue.h"

namespace gpuml::cuda {

namespace {

class CudaStream final : public Stream {
 public:
  explicit CudaStream(cudaStream_t s) : stream(s) {}
  ~CudaStream() override { cudaStreamDestroy(stream); }
  cudaStream_t stream;
};

class CudaEvent final : public Event {
 public:
  explicit CudaEvent(cudaEvent_t e) : event(e) {}
  ~CudaEvent() override { cudaEventDestroy(event); }
  cudaEvent_t event;
};

std::string mib(size_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

// The backend the calling thread is capturing on, if any: its kernels enqueue on the capture
// stream; other threads (loaders freeing their batches) keep using the default stream.
thread_local const CudaBackend* t_capturing = nullptr;

}  // namespace

// One instantiated graph, with the deferred checks its kernels made (their flags, views of the
// capture's flag memory, are reset by the graph itself on every replay).
class CudaGraph final : public CapturedWork {
 public:
  CudaGraph(CudaBackend& backend, cudaGraphExec_t exec, std::vector<std::pair<Tensor, CudaBackend::DeferredMessage>> checks)
      : backend_(backend), exec_(exec), checks_(std::move(checks)) {
    ++backend_.live_graphs_;
  }
  ~CudaGraph() override {
    backend_.activate();
    cudaStreamSynchronize(backend_.stream_);  // no replay still running on what is freed next
    cudaGraphExecDestroy(exec_);
    backend_.graph_released();
  }
  void replay() override { backend_.launch_graph(exec_, checks_); }

 private:
  CudaBackend& backend_;
  cudaGraphExec_t exec_;
  std::vector<std::pair<Tensor, CudaBackend::DeferredMessage>> checks_;
};

CudaBackend::CudaBackend(int device_index) : device_index_(device_index) {
  name_ = device_index == 0 ? "cuda" : fmt::format("cuda:{}", device_index);
  activate();
  cudaDeviceProp prop{};
  GPUML_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_index), "cuda init");
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  description_ = fmt::format("{} (sm_{}{}, {} MiB), CUDA runtime {}.{}, driver {}.{}, cuBLASLt {}, cuDNN {}", prop.name,
                             prop.major, prop.minor, prop.totalGlobalMem >> 20, runtime / 1000, runtime % 1000 / 10,
                             driver / 1000, driver % 1000 / 10, cublasLtGetVersion(), cudnnGetVersion());
  GPUML_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cuda init");
  GPUML_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking), "cuda init");
  GPUML_CUDA_CHECK(cudaStreamCreateWithFlags(&capture_stream_, cudaStreamNonBlocking), "cuda init");
  // The device's default pool, told to keep freed memory: steady-state steps then allocate from
  // the pool without going back to the driver.
  GPUML_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device_index), "cuda init");
  uint64_t keep = UINT64_MAX;
  GPUML_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep), "cuda init");
  for (int i = 0; i < 2; ++i) {
    GPUML_CUDA_CHECK(cudaMallocHost(&staging_[i], kStagingBytes), "cuda init (pinned staging buffers)");
    GPUML_CUDA_CHECK(cudaEventCreateWithFlags(&staging_done_[i], cudaEventDisableTiming), "cuda init");
  }
  GPUML_CHECK_KIND(ErrorKind::Internal, cublasLtCreate(&cublaslt_) == CUBLAS_STATUS_SUCCESS, "cuda init: cublasLtCreate failed");
  cudnnStatus_t st = cudnnCreate(&cudnn_);
  GPUML_CHECK_KIND(ErrorKind::Internal, st == CUDNN_STATUS_SUCCESS, "cuda init: cudnnCreate failed: {}", cudnnGetErrorString(st));
  register_elementwise_kernels(*this);
  register_reduce_kernels(*this);
  register_nn_kernels(*this);
  register_matmul_kernels(*this);
  register_conv_kernels(*this);
  register_attention_kernels(*this);
}

CudaBackend::~CudaBackend() {
  // The registry lives until exit, when the driver may already be shutting down: errors ignored.
  cudaSetDevice(device_index_);
  cudaStreamSynchronize(stream_);
  if (workspace_) cudaFreeAsync(workspace_, stream_);
  for (const auto& [ptr, bytes] : retired_workspaces_) cudaFreeAsync(ptr, stream_);
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublaslt_) cublasLtDestroy(cublaslt_);
  for (int i = 0; i < 2; ++i) {
    if (staging_done_[i]) cudaEventDestroy(staging_done_[i]);
    if (staging_[i]) cudaFreeHost(staging_[i]);
  }
  cudaStreamDestroy(copy_stream_);
  cudaStreamDestroy(capture_stream_);
  cudaStreamDestroy(stream_);
}

void CudaBackend::activate() const { GPUML_CUDA_CHECK(cudaSetDevice(device_index_), name_); }

// A failed call that may not throw (a free in a destructor, a best-effort trim) leaves its error as
// the runtime's "last error", which the next kernel launch would then report as its own
// (check_launch): take it off and keep it for check_deferred_errors, named after the call.
void CudaBackend::note_unthrown_error(const char* what, cudaError_t e) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  std::lock_guard<std::mutex> lock(unthrown_mutex_);
  if (unthrown_error_.empty())
    unthrown_error_ = fmt::format("{}: {} failed: {} ({})", name_, what, cudaGetErrorString(e), cudaGetErrorName(e));
}

cudaStream_t CudaBackend::raw_stream(Stream* stream) const {
  if (auto* s = dynamic_cast<CudaStream*>(stream)) return s->stream;
  return capturing() ? capture_stream_ : stream_;
}

bool CudaBackend::can_capture() const {
  const char* e = std::getenv("GPUML_CUDA_SYNC");
  return e == nullptr || *e == '\0' || std::string_view(e) == "0";
}

bool CudaBackend::capturing() const { return t_capturing == this; }

void CudaBackend::begin_capture() {
  GPUML_CHECK(t_capturing == nullptr, "{}: this thread is already capturing a CUDA graph", name_);
  std::unique_lock<std::mutex> one_at_a_time(capture_mutex_);
  activate();
  // Ordinary memory, allocated before the capture: the flags outlive every replay.
  capture_flags_ = Tensor::empty({kCaptureChecks, 2}, DType::i64, *this);
  capture_flags_used_ = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    capture_checks_.clear();
    capture_allocations_.clear();
  }
  // Thread-local mode: this thread may not make calls that are unsafe during a capture
  // (cudaMalloc, synchronizing): they fail, and the executor then runs eagerly. The capture
  // stream is non-blocking, so other threads' legacy-stream calls do not join the capture.
  GPUML_CUDA_CHECK(cudaStreamBeginCapture(capture_stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
  ++live_graphs_;  // the capture may bake in the workspace: keep it
  t_capturing = this;
  one_at_a_time.release();  // held until end_capture/abort_capture
}

// The capture is over (kept or not): frees what had to wait for it, lets the next one begin.
void CudaBackend::finish_capture() {
  t_capturing = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (void* p : frees_after_capture_) note_unthrown_error("cudaFreeAsync after a capture", cudaFreeAsync(p, stream_));
    frees_after_capture_.clear();
    capture_allocations_.clear();
  }
  graph_released();
  capture_mutex_.unlock();
}

void CudaBackend::graph_released() {
  if (--live_graphs_ > 0) return;
  std::lock_guard<std::mutex> lock(workspace_mutex_);
  for (const auto& [ptr, bytes] : retired_workspaces_) deallocate(ptr, bytes);
  retired_workspaces_.clear();
}

std::unique_ptr<CapturedWork> CudaBackend::end_capture() {
  GPUML_CHECK(t_capturing == this, "{}: end_capture without begin_capture", name_);
  activate();
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(capture_stream_, &graph);
  finish_capture();
  cudaGraphExec_t exec = nullptr;
  if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    cudaGetLastError();
    capture_checks_.clear();
    capture_flags_ = Tensor();
    GPUML_FAIL(ErrorKind::Unsupported, "{}: CUDA graph capture failed: {} ({})", name_, cudaGetErrorString(e),
               cudaGetErrorName(e));
  }
  capture_flags_ = Tensor();  // the checks' flags keep what they use of it
  return std::make_unique<CudaGraph>(*this, exec, std::move(capture_checks_));
}

void CudaBackend::abort_capture() noexcept {
  if (t_capturing == this) {
    activate();
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(capture_stream_, &graph);  // fails if the capture was invalidated: fine
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    finish_capture();
  }
  capture_checks_.clear();
  capture_flags_ = Tensor();
}

Tensor CudaBackend::check_flag() {
  if (!capturing()) return Tensor::empty({2}, DType::i64, *this);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, capture_flags_used_ < kCaptureChecks,
                   "{}: more than {} deferred checks in one CUDA graph", name_, kCaptureChecks);
  const int64_t row = capture_flags_used_++;
  return capture_flags_.slice(0, row, row + 1).reshape({2});
}

void CudaBackend::launch_graph(cudaGraphExec_t exec, const std::vector<std::pair<Tensor, DeferredMessage>>& checks) {
  activate();
  GPUML_CUDA_CHECK(cudaGraphLaunch(exec, stream_), "CUDA graph replay");
  std::lock_guard<std::mutex> lock(mutex_);
  deferred_.insert(deferred_.end(), checks.begin(), checks.end());
}

void CudaBackend::throw_out_of_memory(const char* op, size_t bytes) const {
  size_t free_bytes = 0, total = 0;
  if (cudaError_t e = cudaMemGetInfo(&free_bytes, &total); e != cudaSuccess) {
    cudaGetLastError();  // the figures below are then 0; the out-of-memory error is the one to report
  }
  GPUML_FAIL(ErrorKind::OutOfMemory,
             "{}: out of memory in {}: asked for {}, {} held by gpuml{}, {} free of {} on the device. Try a smaller "
             "--batch-size, --precision bf16, activation recompute, or a larger --gpu-memory-limit",
             name_, op, mib(bytes), mib(in_use_), limit_ ? fmt::format(" (cap {})", mib(limit_)) : std::string(),
             mib(free_bytes), mib(total));
}

void* PinnedHostAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  GPUML_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocPortable), "pinned host memory for batches");
  return p;
}

void PinnedHostAllocator::deallocate(void* ptr, size_t) {
  if (ptr) cudaFreeHost(ptr);  // no throw: may run at exit, after the context is gone
}

void* CudaBackend::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  if (limit_ != 0 && in_use_ + bytes > limit_) throw_out_of_memory("allocate (over --gpu-memory-limit)", bytes);
  activate();
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, bytes, pool_, raw_stream(nullptr));  // a graph node while capturing
  if (e == cudaSuccess && capturing()) capture_allocations_.insert(p);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it: the context is still usable
    throw_out_of_memory("allocate", bytes);
  }
  GPUML_CUDA_CHECK(e, "allocate");
  in_use_ += bytes;
  return p;
}

void CudaBackend::deallocate(void* ptr, size_t bytes) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  note_unthrown_error("cudaSetDevice", cudaSetDevice(device_index_));  // no throw: runs in destructors
  if (capturing() && capture_allocations_.count(ptr) == 0) frees_after_capture_.push_back(ptr);
  else note_unthrown_error("cudaFreeAsync", cudaFreeAsync(ptr, raw_stream(nullptr)));  // may run in a destructor
  in_use_ -= std::min(in_use_, bytes);
}

size_t CudaBackend::memory_budget() const {
  size_t free_bytes = 0, total = 0;
  activate();
  GPUML_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total), "memory budget");
  if (limit_ == 0) return free_bytes;
  return std::min(free_bytes, limit_ > in_use_ ? limit_ - in_use_ : size_t{0});
}

void CudaBackend::release_cached_memory() {
  activate();
  GPUML_CUDA_CHECK(cudaStreamSynchronize(stream_), "release memory");
  GPUML_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0), "release memory");
  // Graph memory no graph is using (best effort: a failure is kept, not blamed on the next kernel).
  note_unthrown_error("cudaDeviceGraphMemTrim", cudaDeviceGraphMemTrim(device_index_));
}

void* CudaBackend::workspace(size_t bytes, const char* op) {
  std::lock_guard<std::mutex> lock(workspace_mutex_);
  if (bytes <= workspace_bytes_) return workspace_;
  GPUML_CHECK_KIND(ErrorKind::Unsupported, !capturing(),
                   "{}: {} needs a larger workspace ({}) while capturing a CUDA graph", name_, op, mib(bytes));
  if (workspace_ && live_graphs_ > 0) retired_workspaces_.emplace_back(workspace_, workspace_bytes_);  // graphs use it
  else if (workspace_) deallocate(workspace_, workspace_bytes_);
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  try {
    workspace_ = allocate(bytes);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::OutOfMemory) throw_out_of_memory(op, bytes);
    throw;
  }
  workspace_bytes_ = bytes;
  return workspace_;
}

// Pageable host memory cannot be copied asynchronously; going through two pinned buffers lets
// the memcpy into one overlap the DMA out of the other, and the caller may reuse `host_src` as
// soon as this returns. Pinned `host_src` (pinned_host_allocator(), the loaders' batches on a
// GPU) is copied directly and asynchronously: it must stay unchanged until the stream has done
// the copy (the trainer frees a batch only after the step's results were read back).
void CudaBackend::copy_to_device(void* dst, const void* host_src, size_t bytes, Stream* stream) {
  if (bytes == 0) return;
  activate();
  cudaStream_t s = raw_stream(stream);
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, host_src) == cudaSuccess && attr.type == cudaMemoryTypeHost) {
    GPUML_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, s), "copy_to_device");
    return;
  }
  cudaGetLastError();
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t done = 0, chunk = 0; done < bytes; done += kStagingBytes, ++chunk) {
    const int b = static_cast<int>(chunk % 2);
    const size_t n = std::min(kStagingBytes, bytes - done);
    GPUML_CUDA_CHECK(cudaEventSynchronize(staging_done_[b]), "copy_to_device");
    std::memcpy(staging_[b], static_cast<const char*>(host_src) + done, n);
    GPUML_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + done, staging_[b], n, cudaMemcpyHostToDevice, s),
                     "copy_to_device");
    GPUML_CUDA_CHECK(cudaEventRecord(staging_done_[b], s), "copy_to_device");
  }
}

// Synchronous for the host by nature (the caller reads host_dst next): DMA into a pinned buffer,
// then memcpy out, chunk by chunk.
void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes, Stream* stream) {
  if (bytes == 0) return;
  activate();
  cudaStream_t s = raw_stream(stream);
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, host_dst) == cudaSuccess && attr.type == cudaMemoryTypeHost) {
    GPUML_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy_to_host");
    GPUML_CUDA_CHECK(cudaStreamSynchronize(s), "copy_to_host");
    return;
  }
  cudaGetLastError();
  std::lock_guard<std::mutex> lock(mutex_);
  // copy_to_device may have left a DMA out of staging_[0] pending on another stream (a batch
  // staged on the copy stream): wait for it before overwriting the buffer.
  GPUML_CUDA_CHECK(cudaEventSynchronize(staging_done_[0]), "copy_to_host");
  for (size_t done = 0; done < bytes; done += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, bytes - done);
    GPUML_CUDA_CHECK(cudaMemcpyAsync(staging_[0], static_cast<const char*>(src) + done, n, cudaMemcpyDeviceToHost, s),
                     "copy_to_host");
    GPUML_CUDA_CHECK(cudaStreamSynchronize(s), "copy_to_host");
    std::memcpy(static_cast<char*>(host_dst) + done, staging_[0], n);
  }
}

void CudaBackend::copy_within(void* dst, const void* src, size_t bytes, Stream* stream) {
  if (bytes == 0) return;
  activate();
  GPUML_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, raw_stream(stream)), "copy_within");
}

std::unique_ptr<Stream> CudaBackend::create_stream() {
  activate();
  cudaStream_t s = nullptr;
  GPUML_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "create_stream");
  return std::make_unique<CudaStream>(s);
}

std::unique_ptr<Event> CudaBackend::record_event(Stream* stream) {
  activate();
  cudaEvent_t e = nullptr;
  GPUML_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "record_event");
  auto event = std::make_unique<CudaEvent>(e);
  GPUML_CUDA_CHECK(cudaEventRecord(e, raw_stream(stream)), "record_event");
  return event;
}

void CudaBackend::wait_event(Stream* stream, const Event& event) {
  auto* e = dynamic_cast<const CudaEvent*>(&event);
  GPUML_CHECK(e != nullptr, "{}: wait_event on an event of another backend", name_);
  GPUML_CUDA_CHECK(cudaStreamWaitEvent(raw_stream(stream), e->event, 0), "wait_event");
}

void CudaBackend::synchronize(Stream* stream) {
  activate();
  GPUML_CUDA_CHECK(cudaStreamSynchronize(raw_stream(stream)), "synchronize");
}

void CudaBackend::defer_check(Tensor flag, DeferredMessage message) {
  std::lock_guard<std::mutex> lock(mutex_);
  // While capturing, the check belongs to the graph: registered again on every replay.
  if (capturing()) capture_checks_.emplace_back(std::move(flag), std::move(message));
  else deferred_.emplace_back(std::move(flag), std::move(message));
}

void CudaBackend::check_deferred_errors() {
  {
    std::lock_guard<std::mutex> lock(unthrown_mutex_);
    if (!unthrown_error_.empty()) {
      std::string message;
      message.swap(unthrown_error_);
      GPUML_FAIL(ErrorKind::Internal, "{}", message);
    }
  }
  std::vector<std::pair<Tensor, DeferredMessage>> checks;
  {
    std::lock_guard<std::mutex> lock(mutex_);  // copy_to_host below takes it too
    checks.swap(deferred_);
  }
  for (const auto& [flag, message] : checks) {
    int64_t found[2] = {-1, 0};
    copy_to_host(found, flag.raw_data(), sizeof(found));  // ordered after the kernels, then synced
    if (found[0] >= 0) GPUML_FAIL(ErrorKind::Invalid, "{}", message(found[0], found[1]));
  }
}

}  // namespace gpuml::cuda
