#include "backend/communicator.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "backend/backend.h"
#include "backend/plugin_loader.h"

namespace gpuml {

namespace {

constexpr const char* kMpiPluginFile = "libgpuml_mpi.so";
constexpr const char* kGlooPluginFile = "libgpuml_gloo.so";

class SingleProcessCommunicator final : public Communicator {
 public:
  std::string_view name() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string description() const override { return "one process: collectives return their input"; }

 protected:
  void do_all_reduce(std::span<float>, ReduceOp, const CollectiveCall&) override {}
  void do_broadcast(std::span<std::byte>, int, const CollectiveCall&) override {}
  void do_all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall&) override {
    std::memmove(all.data(), mine.data(), mine.size());  // the same bytes when in place
  }
  void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp, const CollectiveCall&) override {
    std::copy(all.begin(), all.end(), mine.begin());
  }
  void do_barrier(const CollectiveCall&) override {}
};

struct EnginePackages {
  const char* build;    // what building the plugin needs
  const char* runtime;  // what loading it needs
};
EnginePackages packages_of(std::string_view engine) {
  if (engine == "gloo") return {"Gloo's headers, Debian's libgloo-dev", "Debian: libgloo0"};
  return {"Open MPI's headers, Debian's libopenmpi-dev", "is Open MPI installed? Debian: openmpi-bin"};
}

// dlopen()s a communicator plugin and asks it for a communicator; every failure becomes an Error
// that says what to do. The plugin stays loaded for the life of the process (the communicator's
// code and the engine's library live in it; MPI cannot be initialised twice anyway).
std::unique_ptr<Communicator> open_communicator_plugin(const ProcessPlacement& placement, const CommunicatorChoice& choice,
                                                       std::chrono::milliseconds timeout) {
  const EnginePackages packages = packages_of(choice.engine);
  const std::string path = find_plugin_file(choice.plugin_file);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, !path.empty(),
                   "{} ({}) started {} processes, but {} is not there (searched {}; set GPUML_PLUGIN_PATH, or build "
                   "it: it needs {})",
                   placement.launcher, describe_placement(placement), placement.world_size, choice.plugin_file,
                   fmt::join(plugin_search_paths(), ", "), packages.build);
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    GPUML_FAIL(ErrorKind::Unsupported, "cannot load {}: {} ({})", path, why ? why : "unknown dlopen error",
               packages.runtime);
  }
  auto abi = reinterpret_cast<CommPluginAbiVersionFn>(dlsym(handle, kCommPluginAbiVersionSymbol));
  auto open = reinterpret_cast<CommPluginOpenFn>(dlsym(handle, kCommPluginOpenSymbol));
  GPUML_CHECK_KIND(ErrorKind::Unsupported, abi && open, "{} is not a gpuml communicator plugin (no {} / {})", path,
                   kCommPluginAbiVersionSymbol, kCommPluginOpenSymbol);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, abi() == kCommunicatorAbiVersion,
                   "{} was built for communicator ABI {}, this gpuml expects {}: rebuild it", path, abi(),
                   kCommunicatorAbiVersion);
  CommunicatorOpen request;
  request.placement = &placement;
  request.timeout = timeout;
  open(&request);
  GPUML_CHECK_KIND(ErrorKind::Io, request.communicator != nullptr, "{}: {}", path,
                   request.reason.empty() ? "the plugin returned no communicator" : request.reason);
  return std::move(request.communicator);
}

}  // namespace

namespace {
std::string other_ranks(int rank, int world_size) {
  return world_size == 2 ? fmt::format("rank {}", 1 - rank) : fmt::format("ranks 0..{} but {}", world_size - 1, rank);
}
}  // namespace

std::string collective_failure_message(int rank, int world_size, std::string_view collective,
                                       const CollectiveCall& call, double waited_seconds, std::string_view cause) {
  return fmt::format("rank {} of {}: {} of {} failed after {:.1f} s: the connection to {} broke (a rank died or "
                     "exited): {}",
                     rank, world_size, collective, call.what, waited_seconds,
                     world_size == 2 ? other_ranks(rank, world_size) : "another rank", cause);
}

std::string collective_timeout_message(int rank, int world_size, std::string_view collective,
                                       const CollectiveCall& call, double waited_seconds) {
  std::string others = other_ranks(rank, world_size);
  return fmt::format("rank {} of {}: {} of {} waited {:.1f} s (deadline {:.1f} s) for {}; a rank died, exited or "
                     "stalled (--dist-timeout sets the deadline)",
                     rank, world_size, collective, call.what, waited_seconds,
                     std::chrono::duration<double>(call.timeout).count(), others);
}

void Communicator::all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) {
  if (values.empty()) return;  // the same length on every rank: every rank skips
  do_all_reduce(values, op == ReduceOp::average ? ReduceOp::sum : op, call);
  if (op == ReduceOp::average && world_size() > 1) scale(values, 1.0f / static_cast<float>(world_size()), call);
}

void Communicator::broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) {
  GPUML_CHECK(root >= 0 && root < world_size(), "broadcast of {} from rank {}: there {} {} rank{} (0..{})", call.what,
              root, world_size() == 1 ? "is" : "are", world_size(), world_size() == 1 ? "" : "s", world_size() - 1);
  if (bytes.empty()) return;
  do_broadcast(bytes, root, call);
}

void Communicator::all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) {
  GPUML_CHECK(all.size() == mine.size() * static_cast<size_t>(world_size()),
              "all_gather of {}: {} bytes for {} rank(s) of {}", call.what, all.size(), world_size(), mine.size());
  if (mine.empty()) return;
  do_all_gather(mine, all, call);
}

void Communicator::reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                                  const CollectiveCall& call) {
  GPUML_CHECK(all.size() == mine.size() * static_cast<size_t>(world_size()),
              "reduce_scatter of {}: {} values for {} rank(s) of {}", call.what, all.size(), world_size(),
              mine.size());
  if (mine.empty()) return;
  do_reduce_scatter(all, mine, op == ReduceOp::average ? ReduceOp::sum : op, call);
  if (op == ReduceOp::average && world_size() > 1) scale(mine, 1.0f / static_cast<float>(world_size()), call);
}

void Communicator::barrier(const CollectiveCall& call) { do_barrier(call); }

void Communicator::scale(std::span<float> values, float factor, const CollectiveCall&) {
  for (float& v : values) v *= factor;
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

CommunicatorChoice choose_communicator(const ProcessPlacement& placement) {
  if (!placement.distributed()) return {"single", ""};
  // The torchrun variables come with a rendezvous address and no MPI run time behind them.
  if (placement.launcher == "torchrun") return {"gloo", kGlooPluginFile};
  // Open MPI's mpirun, or srun starting Open MPI processes (PMIx): both go through MPI_Init.
  return {"mpi", kMpiPluginFile};
}

std::shared_ptr<Communicator> open_communicator(const ProcessPlacement& placement,
                                                std::chrono::milliseconds rendezvous_timeout) {
  const CommunicatorChoice choice = choose_communicator(placement);
  if (choice.engine == "single") return make_single_process_communicator();
  return open_communicator_plugin(placement, choice, rendezvous_timeout);
}

std::string gradient_engine_request(const Environment& env) {
  auto it = env.find("GPUML_COMM");
  if (it == env.end() || it->second.empty() || it->second == "auto") return "auto";
  GPUML_CHECK(it->second == "nccl" || it->second == "host",
              "GPUML_COMM={}: it takes auto (NCCL for the gradients of several GPU ranks), nccl (NCCL even for "
              "one rank) or host (the gradients through host memory over MPI or Gloo)",
              it->second);
  return it->second;
}

GradientEngineChoice choose_gradient_engine(std::string_view request, bool trains_on_gpu, int world_size) {
  if (request == "host") return {"host", "GPUML_COMM=host"};
  if (request == "nccl") {
    GPUML_CHECK_KIND(ErrorKind::Unsupported, trains_on_gpu,
                     "GPUML_COMM=nccl: NCCL carries gradients in GPU memory, and this run trains on the host: "
                     "use --device cuda, or unset GPUML_COMM");
    return {"nccl", "GPUML_COMM=nccl"};
  }
  GPUML_CHECK(request == "auto", "gradient engine '{}': auto, nccl or host", request);
  if (!trains_on_gpu) return {"host", "the model trains on the host"};
  if (world_size <= 1) return {"host", "one process: no gradient to share"};
  return {"nccl", fmt::format("a GPU and {} ranks", world_size)};
}

std::shared_ptr<Communicator> open_device_communicator(Backend& device_backend, std::shared_ptr<Communicator> host,
                                                       std::chrono::milliseconds timeout) {
  GPUML_CHECK_KIND(ErrorKind::Unsupported, !device_backend.device().is_host(),
                   "NCCL works on GPU memory; {} is a host backend", device_backend.name());
  // The CUDA plugin is loaded already (it made `device_backend`): find its handle, not a new copy.
  const std::string path = find_plugin_file("libgpuml_cuda.so");
  void* handle = path.empty() ? nullptr : dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, handle != nullptr,
                   "NCCL lives in the CUDA plugin, and libgpuml_cuda.so is not loaded from the plugin path ({})",
                   fmt::join(plugin_search_paths(), ", "));
  auto abi = reinterpret_cast<CommPluginAbiVersionFn>(dlsym(handle, kCommPluginAbiVersionSymbol));
  auto open = reinterpret_cast<DeviceCommOpenFn>(dlsym(handle, kDeviceCommOpenSymbol));
  dlclose(handle);  // drops the reference RTLD_NOLOAD took; the backend's keeps the plugin loaded
  GPUML_CHECK_KIND(ErrorKind::Unsupported, abi && open,
                   "{} has no NCCL entry ({}): it predates NCCL in gpuml; rebuild it", path, kDeviceCommOpenSymbol);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, abi() == kCommunicatorAbiVersion,
                   "{} was built for communicator ABI {}, this gpuml expects {}: rebuild it", path, abi(),
                   kCommunicatorAbiVersion);
  DeviceCommunicatorOpen request;
  request.device_backend = &device_backend;
  request.host = std::move(host);
  request.timeout = timeout;
  open(&request);
  GPUML_CHECK_KIND(ErrorKind::Io, request.communicator != nullptr, "NCCL on {}: {}", device_backend.device().str(),
                   request.reason.empty() ? "the CUDA plugin returned no communicator" : request.reason);
  return std::move(request.communicator);
}

}  // namespace gpuml
