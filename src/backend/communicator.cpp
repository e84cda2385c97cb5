#include "backend/communicator.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstring>
#include <exception>

#include "backend/plugin_loader.h"

namespace gpuml {

namespace {

constexpr const char* kMpiPluginFile = "libgpuml_mpi.so";

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
  void barrier(const CollectiveCall&) override {}
};

// dlopen()s the MPI plugin and asks it for a communicator; every failure becomes an Error that
// says what to do. The plugin stays loaded for the life of the process (the communicator's code
// and the MPI library live in it; MPI cannot be initialised twice anyway).
std::unique_ptr<Communicator> open_mpi_plugin(const ProcessPlacement& placement) {
  const std::string path = find_plugin_file(kMpiPluginFile);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, !path.empty(),
                   "{} ({}) started {} processes, but {} is not there (searched {}; set GPUML_PLUGIN_PATH, or build "
                   "it: it needs Open MPI's headers, Debian's libopenmpi-dev)",
                   placement.launcher, describe_placement(placement), placement.world_size, kMpiPluginFile,
                   fmt::join(plugin_search_paths(), ", "));
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    GPUML_FAIL(ErrorKind::Unsupported, "cannot load {}: {} (is Open MPI installed? Debian: openmpi-bin)", path,
               why ? why : "unknown dlopen error");
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
  open(&request);
  GPUML_CHECK_KIND(ErrorKind::Io, request.communicator != nullptr, "{}: {}", path,
                   request.reason.empty() ? "the plugin returned no communicator" : request.reason);
  return std::move(request.communicator);
}

}  // namespace

std::string collective_timeout_message(int rank, int world_size, std::string_view collective,
                                       const CollectiveCall& call, double waited_seconds) {
  std::string others = world_size == 2 ? fmt::format("rank {}", 1 - rank)
                                       : fmt::format("ranks 0..{} but {}", world_size - 1, rank);
  return fmt::format("rank {} of {}: {} of {} waited {:.1f} s (deadline {:.1f} s) for {}; a rank died, exited or "
                     "stalled (--dist-timeout sets the deadline)",
                     rank, world_size, collective, call.what, waited_seconds,
                     std::chrono::duration<double>(call.timeout).count(), others);
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

std::shared_ptr<Communicator> open_communicator(const ProcessPlacement& placement) {
  if (!placement.distributed()) return make_single_process_communicator();
  if (placement.launcher == "torchrun")
    GPUML_FAIL(ErrorKind::Unsupported,
               "{}: the torchrun variables select the Gloo engine, which gpuml does not have yet; launch the same "
               "job with mpirun -np {} (Open MPI)",
               describe_placement(placement), placement.world_size);
  // Open MPI's mpirun, or srun starting Open MPI processes (PMIx): both go through MPI_Init.
  return open_mpi_plugin(placement);
}

}  // namespace gpuml
