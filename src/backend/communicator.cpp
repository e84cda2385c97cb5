#include "backend/communicator.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <exception>

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
  void all_reduce(std::span<float>, ReduceOp, const CollectiveCall&) override {}
  void broadcast(std::span<std::byte>, int root, const CollectiveCall& call) override {
    GPUML_CHECK(root == 0, "broadcast of {} from rank {}: there is one process (rank 0)", call.what, root);
  }
  void all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) override {
    GPUML_CHECK(all.size() == mine.size(), "all_gather of {}: {} bytes for {} from one rank", call.what, all.size(),
                mine.size());
    if (!mine.empty()) std::memcpy(all.data(), mine.data(), mine.size());
  }
  void reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp, const CollectiveCall& call) override {
    GPUML_CHECK(all.size() == mine.size(), "reduce_scatter of {}: {} values for a block of {} on one rank", call.what,
                all.size(), mine.size());
    std::copy(all.begin(), all.end(), mine.begin());
  }
  void barrier(const CollectiveCall&) override {}
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

}  // namespace gpuml
