// NCCL (backend/communicator.h) inside the CUDA plugin: the collectives of data parallelism on
// this rank's GPU memory, with no host copy; host memory is taken too, staged through a device
// buffer. Opened by open_device_communicator() (the core) through gpuml_device_comm_open().
//
// Why libnccl.so.2 is dlopen()ed rather than linked: a plugin that needs NCCL would not load at
// all where NCCL is missing, taking the whole GPU backend with it for a feature only several-GPU
// jobs (and the GPU check) use. Built from nccl.h (GPUML_NCCL_ENABLED, cmake/GpumlCuda.cmake); a
// plugin built without it says so when NCCL is asked for.
//
// Deadlines: the communicator is non-blocking (ncclConfig_t::blocking = 0), so no NCCL call waits
// inside NCCL. Each collective is enqueued on the stream, then this rank polls NCCL's state
// (ncclCommGetAsyncError: a peer's broken connection shows there) and an event recorded after the
// collective, until it is done or the call's deadline passes; then ncclCommAbort ends the
// communicator (its kernels exit) and the call throws the message of collective_timeout_message()
// or collective_failure_message(): this rank, the collective, what it carried. Every later
// collective is refused. NCCL cannot end the other processes: abort_job() passes to the host
// communicator (MPI_Abort; Gloo exits, failing its peers).
//
// NCCL's unique id: made by rank 0 and broadcast over the job's host communicator (MPI or Gloo)
// within the open's deadline; made here for one rank.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#if defined(GPUML_NCCL_ENABLED)
#include <nccl.h>
#endif

#include "backend/communicator.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"
#include "backend/cuda/cuda_kernels.h"

namespace gpuml::cuda {

namespace {

#if defined(GPUML_NCCL_ENABLED)

using Clock = std::chrono::steady_clock;

// The NCCL entry points gpuml calls, from libnccl.so.2. Non-blocking communicators and
// ncclCommFinalize came with NCCL 2.14.
struct NcclLibrary {
  static constexpr int kOldestVersion = 21400;
  void* handle = nullptr;
  int version = 0;
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  decltype(&ncclGetLastError) last_error = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRankConfig) init_rank_config = nullptr;
  decltype(&ncclCommGetAsyncError) get_async_error = nullptr;
  decltype(&ncclCommFinalize) finalize = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclReduceScatter) reduce_scatter = nullptr;

  NcclLibrary() {
    dlerror();
    handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      GPUML_FAIL(ErrorKind::Unsupported,
                 "NCCL is not installed here: cannot load libnccl.so.2 ({}); install it (Debian: libnccl2; pip: "
                 "nvidia-nccl-cu13) or put its folder on LD_LIBRARY_PATH, or unset GPUML_COMM to send the gradients "
                 "through host memory",
                 why ? why : "unknown dlopen error");
    }
    resolve(get_version, "ncclGetVersion");
    resolve(error_string, "ncclGetErrorString");
    resolve(last_error, "ncclGetLastError");
    resolve(get_unique_id, "ncclGetUniqueId");
    resolve(init_rank_config, "ncclCommInitRankConfig");
    resolve(get_async_error, "ncclCommGetAsyncError");
    resolve(finalize, "ncclCommFinalize");
    resolve(destroy, "ncclCommDestroy");
    resolve(abort, "ncclCommAbort");
    resolve(all_reduce, "ncclAllReduce");
    resolve(broadcast, "ncclBroadcast");
    resolve(all_gather, "ncclAllGather");
    resolve(reduce_scatter, "ncclReduceScatter");
    get_version(&version);
    if (version < kOldestVersion) {
      dlclose(handle);
      GPUML_FAIL(ErrorKind::Unsupported, "libnccl.so.2 is NCCL {}; gpuml needs NCCL 2.14 or newer (non-blocking "
                 "communicators)", version_text(version));
    }
  }
  ~NcclLibrary() {
    if (handle != nullptr) dlclose(handle);
  }
  NcclLibrary(const NcclLibrary&) = delete;
  NcclLibrary& operator=(const NcclLibrary&) = delete;

  template <class Fn>
  void resolve(Fn& fn, const char* symbol) {
    fn = reinterpret_cast<Fn>(dlsym(handle, symbol));
    if (fn == nullptr) {
      Dl_info info{};
      const bool named = dladdr(reinterpret_cast<void*>(dlsym(handle, "ncclGetVersion")), &info) != 0;
      dlclose(handle);
      handle = nullptr;
      GPUML_FAIL(ErrorKind::Unsupported, "libnccl.so.2 ({}) has no {}: gpuml needs NCCL 2.14 or newer",
                 named && info.dli_fname ? info.dli_fname : "?", symbol);
    }
  }

  // NCCL's code: 2.19.3 is 21903 (from 2.9 on; 2708 was 2.7.8).
  static std::string version_text(int code) {
    return code >= 10000 ? fmt::format("{}.{}.{}", code / 10000, code / 100 % 100, code % 100)
                         : fmt::format("{}.{}.{}", code / 1000, code / 100 % 10, code % 100);
  }
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(CudaBackend& gpu, std::shared_ptr<Communicator> host, std::chrono::milliseconds timeout)
      : gpu_(gpu), host_(std::move(host)), timeout_(timeout) {
    rank_ = host_ ? host_->rank() : 0;
    size_ = host_ ? host_->world_size() : 1;
    device_index_ = gpu_.device().index;
    const CollectiveCall open_call{"NCCL's initialisation", timeout_};
    ncclUniqueId id{};
    if (rank_ == 0) check(nccl_.get_unique_id(&id), "ncclGetUniqueId");
    if (size_ > 1)
      host_->broadcast({reinterpret_cast<std::byte*>(&id), sizeof id}, 0, {"NCCL's unique id", timeout_});
    activate();
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // every call returns at once: this rank polls against the deadline
    const Clock::time_point start = Clock::now();
    const ncclResult_t begun = nccl_.init_rank_config(&comm_, size_, id, rank_, &config);
    GPUML_CHECK_KIND(ErrorKind::Io, begun == ncclSuccess || begun == ncclInProgress,
                     "rank {} of {}: ncclCommInitRankConfig on {} failed: {} ({})", rank_, size_,
                     gpu_.device().str(), nccl_.error_string(begun), nccl_.last_error(comm_));
    wait_until_enqueued("initialisation", open_call, start);
    GPUML_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "NCCL");
  }

  ~NcclCommunicator() override {
    (void)cudaSetDevice(device_index_);
    if (comm_ != nullptr) {
      // A communicator that failed, or that unwinds past an error (a peer may still wait in a
      // collective), is aborted; otherwise its pending work is flushed first.
      bool clean = broken_.empty() && std::uncaught_exceptions() == 0;
      if (clean) {
        const ncclResult_t flushing = nccl_.finalize(comm_);
        clean = flushing == ncclSuccess || flushing == ncclInProgress;
      }
      const Clock::time_point deadline = Clock::now() + timeout_;
      ncclResult_t state = ncclInProgress;
      while (clean && nccl_.get_async_error(comm_, &state) == ncclSuccess && state == ncclInProgress &&
             Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (clean && state == ncclSuccess) nccl_.destroy(comm_);
      else nccl_.abort(comm_);
    }
    if (done_ != nullptr) cudaEventDestroy(done_);
    if (staging_ != nullptr) gpu_.deallocate(staging_, staging_bytes_);
    cudaGetLastError();  // nothing here may throw; the next kernel launch must not see our errors
  }

  std::string_view name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string description() const override {
    return fmt::format("NCCL {} on {}, rank {} of {}", NcclLibrary::version_text(nccl_.version), gpu_.device().str(),
                       rank_, size_);
  }
  Device memory_device() const override { return gpu_.device(); }

  void abort_job(std::string_view reason) noexcept override {
    if (comm_ != nullptr) {
      nccl_.abort(comm_);
      comm_ = nullptr;
    }
    if (host_) host_->abort_job(reason);
  }

 protected:
  void do_all_reduce(std::span<float> values, ::gpuml::ReduceOp op, const CollectiveCall& call) override {
    const ncclRedOp_t nccl_op = op == ::gpuml::ReduceOp::max ? ncclMax : ncclSum;
    run("all_reduce", call, values.data(), values.size_bytes(), values.data(), values.size_bytes(),
        [&](const void* send, void* recv, cudaStream_t s) {
          return nccl_.all_reduce(send, recv, values.size(), ncclFloat32, nccl_op, comm_, s);
        });
  }

  void do_broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) override {
    run("broadcast", call, bytes.data(), bytes.size(), bytes.data(), bytes.size(),
        [&](const void* send, void* recv, cudaStream_t s) {
          return nccl_.broadcast(send, recv, bytes.size(), ncclUint8, root, comm_, s);
        });
  }

  void do_all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) override {
    run("all_gather", call, mine.data(), mine.size(), all.data(), all.size(),
        [&](const void* send, void* recv, cudaStream_t s) {
          return nccl_.all_gather(send, recv, mine.size(), ncclUint8, comm_, s);
        });
  }

  void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ::gpuml::ReduceOp op,
                         const CollectiveCall& call) override {
    const ncclRedOp_t nccl_op = op == ::gpuml::ReduceOp::max ? ncclMax : ncclSum;
    run("reduce_scatter", call, all.data(), all.size_bytes(), mine.data(), mine.size_bytes(),
        [&](const void* send, void* recv, cudaStream_t s) {
          return nccl_.reduce_scatter(send, recv, mine.size(), ncclFloat32, nccl_op, comm_, s);
        });
  }

  // NCCL has no barrier: an all-reduce of one float (staged) waits for every rank just the same.
  void do_barrier(const CollectiveCall& call) override {
    float one = 1.0f;
    run("barrier", call, &one, sizeof one, &one, sizeof one, [&](const void* send, void* recv, cudaStream_t s) {
      return nccl_.all_reduce(send, recv, 1, ncclFloat32, ncclSum, comm_, s);
    });
  }

  void scale(std::span<float> values, float factor, const CollectiveCall& call) override {
    if (!on_this_gpu(values.data())) return Communicator::scale(values, factor, call);
    activate();
    const cudaStream_t s = stream_of(call);
    launch_scale_f32(values.data(), static_cast<int64_t>(values.size()), factor, s);
    GPUML_CUDA_CHECK(cudaStreamSynchronize(s), "NCCL average");
  }

 private:
  void activate() const { GPUML_CUDA_CHECK(cudaSetDevice(device_index_), "NCCL"); }
  cudaStream_t stream_of(const CollectiveCall& call) const { return gpu_.raw_stream(call.stream); }

  void check(ncclResult_t r, const char* what) const {
    GPUML_CHECK_KIND(ErrorKind::Io, r == ncclSuccess, "rank {} of {}: {} failed: {} ({})", rank_, size_, what,
                     nccl_.error_string(r), nccl_.last_error(comm_));
  }

  // Whether `p` is memory of this rank's GPU (device or managed memory); host memory (pageable or
  // pinned) is staged. Memory of another GPU is refused: NCCL would read it through peer access,
  // if at all, and it means the caller's tensors are on another device than its communicator.
  bool on_this_gpu(const void* p) const {
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
      cudaGetLastError();  // pageable memory on an old runtime: host memory
      return false;
    }
    if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) return false;
    GPUML_CHECK(attributes.device == device_index_,
                "rank {}: a buffer in the memory of cuda:{}, but this rank's NCCL works on cuda:{}", rank_,
                attributes.device, device_index_);
    return true;
  }

  // A device buffer of at least `bytes` for host memory's trip through NCCL; kept for the next call.
  std::byte* staging(size_t bytes) {
    if (bytes > staging_bytes_) {
      if (staging_ != nullptr) gpu_.deallocate(staging_, staging_bytes_);
      staging_ = nullptr;
      staging_bytes_ = 0;
      staging_ = gpu_.allocate(bytes);
      staging_bytes_ = bytes;
      // Allocated in order on the backend's default stream; a collective may use another.
      GPUML_CUDA_CHECK(cudaStreamSynchronize(gpu_.raw_stream(nullptr)), "NCCL staging buffer");
    }
    return static_cast<std::byte*>(staging_);
  }

  // One collective: `enqueue(send, recv, stream)` on device pointers, the caller's own when both
  // buffers lie in this GPU's memory, else a staging buffer that host data is copied into and out
  // of. In place (all_reduce, broadcast) when send == recv. Returns once the result is there.
  template <class Enqueue>
  void run(const char* collective, const CollectiveCall& call, const void* send, size_t send_bytes, void* recv,
           size_t recv_bytes, Enqueue&& enqueue) {
    GPUML_CHECK_KIND(ErrorKind::Io, broken_.empty() && comm_ != nullptr,
                     "rank {} of {}: {} of {}: NCCL failed earlier ({})", rank_, size_, collective, call.what,
                     broken_.empty() ? "the job is ending" : broken_);
    activate();
    const cudaStream_t s = stream_of(call);
    const bool in_place = send == recv;
    const bool direct = on_this_gpu(send) && (in_place || on_this_gpu(recv));
    const void* device_send = send;
    void* device_recv = recv;
    if (!direct) {
      const size_t send_room = in_place ? 0 : (send_bytes + 255) / 256 * 256;
      std::byte* buffer = staging(send_room + recv_bytes);
      device_send = buffer;
      device_recv = in_place ? buffer : buffer + send_room;
      GPUML_CUDA_CHECK(cudaMemcpyAsync(buffer, send, send_bytes, cudaMemcpyDefault, s), "NCCL staging");
    }
    const Clock::time_point start = Clock::now();
    const ncclResult_t begun = enqueue(device_send, device_recv, s);
    if (begun != ncclSuccess && begun != ncclInProgress) fail(collective, call, start, begun);
    wait_until_enqueued(collective, call, start);
    GPUML_CUDA_CHECK(cudaEventRecord(done_, s), "NCCL");
    wait_for_event(collective, call, start);
    if (!direct) {
      GPUML_CUDA_CHECK(cudaMemcpyAsync(recv, device_recv, recv_bytes, cudaMemcpyDefault, s), "NCCL staging");
      GPUML_CUDA_CHECK(cudaStreamSynchronize(s), "NCCL staging");
    }
  }

  // A non-blocking communicator may still be setting up (init) or enqueueing (a collective):
  // its state is ncclInProgress until then.
  void wait_until_enqueued(const char* collective, const CollectiveCall& call, Clock::time_point start) {
    for (;;) {
      ncclResult_t state = ncclInProgress;
      const ncclResult_t asked = nccl_.get_async_error(comm_, &state);
      if (asked != ncclSuccess) fail(collective, call, start, asked);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(collective, call, start, state);
      pause_or_time_out(collective, call, start);
    }
  }

  // The collective's kernel runs on the stream: its event completes, or NCCL reports a broken
  // peer, or the deadline passes.
  void wait_for_event(const char* collective, const CollectiveCall& call, Clock::time_point start) {
    for (;;) {
      const cudaError_t e = cudaEventQuery(done_);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) GPUML_CUDA_CHECK(e, fmt::format("{} of {}", collective, call.what));
      ncclResult_t state = ncclSuccess;
      if (nccl_.get_async_error(comm_, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
        fail(collective, call, start, state);
      pause_or_time_out(collective, call, start);
    }
  }

  // For the first 50 ms a poll only yields: a step's collective is usually done by then, and a
  // sleep's granularity would be added to every step (the GPU check times the step against one
  // process's). Later polls sleep 200 us, so that a rank waiting for a stalled peer leaves its
  // core to others. Past the deadline: abort.
  void pause_or_time_out(const char* collective, const CollectiveCall& call, Clock::time_point start) {
    const Clock::time_point now = Clock::now();
    if (now - start >= call.timeout) {
      broken_ = collective_timeout_message(rank_, size_, collective, call,
                                           std::chrono::duration<double>(now - start).count()) +
                " (NCCL: communicator aborted)";
      nccl_.abort(comm_);
      comm_ = nullptr;
      GPUML_FAIL(ErrorKind::Io, "{}", broken_);
    }
    if (now - start < std::chrono::milliseconds(50)) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  }

  [[noreturn]] void fail(const char* collective, const CollectiveCall& call, Clock::time_point start,
                         ncclResult_t r) {
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    const std::string cause = fmt::format("NCCL: {} ({})", nccl_.error_string(r), nccl_.last_error(comm_));
    broken_ = size_ > 1 ? collective_failure_message(rank_, size_, collective, call, waited, cause)
                        : fmt::format("rank 0 of 1: {} of {} failed after {:.1f} s: {}", collective, call.what,
                                      waited, cause);
    if (comm_ != nullptr) nccl_.abort(comm_);
    comm_ = nullptr;
    GPUML_FAIL(ErrorKind::Io, "{}", broken_);
  }

  NcclLibrary nccl_;  // first: loaded before anything NCCL is called, closed after the communicator
  CudaBackend& gpu_;
  std::shared_ptr<Communicator> host_;  // nullptr: one rank
  std::chrono::milliseconds timeout_;
  int rank_ = 0, size_ = 1, device_index_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaEvent_t done_ = nullptr;
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  std::string broken_;  // set when a collective failed or passed its deadline
};

#endif  // GPUML_NCCL_ENABLED

}  // namespace

}  // namespace gpuml::cuda

extern "C" int gpuml_comm_plugin_abi_version() { return gpuml::kCommunicatorAbiVersion; }

extern "C" void gpuml_device_comm_open(gpuml::DeviceCommunicatorOpen* request) {
  try {
    auto* gpu = dynamic_cast<gpuml::cuda::CudaBackend*>(request->device_backend);
    if (gpu == nullptr) {
      request->reason = fmt::format("NCCL needs a CUDA backend of this plugin, not {}",
                                    request->device_backend ? request->device_backend->name() : "none");
      return;
    }
#if defined(GPUML_NCCL_ENABLED)
    request->communicator = std::make_unique<gpuml::cuda::NcclCommunicator>(*gpu, request->host, request->timeout);
#else
    request->reason =
        "this CUDA plugin was built without NCCL (nccl.h was not found when it was compiled; see cmake's "
        "'NCCL:' line): unset GPUML_COMM to send the gradients through host memory";
#endif
  } catch (const std::exception& e) {
    request->reason = e.what();
  }
}
