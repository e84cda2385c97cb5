// Collectives across the processes of one job (data parallelism), beside streams and events in
// the backend layer. Each engine is a loadable plugin, as the CUDA backend is, so that the core
// library links no MPI nor Gloo (nor, later, NCCL): libgpuml_mpi.so is opened when mpirun or srun
// started several processes, libgpuml_gloo.so when the torchrun variables did (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT; backend/process_env.h). gpuml has no transport of its own: Gloo's
// TCP pairs carry the data; the only socket code of gpuml's is Gloo's rendezvous store
// (backend/gloo/tcp_store.h), since Debian's Gloo has none that speaks TCP.
//
//   ProcessPlacement me = detect_process_placement(environment_of_this_process());
//   std::shared_ptr<Communicator> comm = open_communicator(me, 30s);   // "single" for one process
//   comm->broadcast(as_writable_bytes(std::span(weights)), /*root*/ 0, {"weights", 30s});
//   comm->all_reduce(std::span(gradients), ReduceOp::average, {"gradients", 30s});
//
// Buffers are host memory for now (the CPU backend's, or a host copy of a device's); NCCL on
// device memory is later work. Every collective takes a deadline: a peer that died, exited or
// stalled makes the call fail with a gpuml::Error (ErrorKind::Io) that names this rank, the collective and
// what it carried, never a hang. An implementation may end the whole job then (MPI_Abort), since
// the other ranks are stuck in the same collective.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "backend/process_env.h"
#include "core/error.h"

namespace gpuml {

enum class ReduceOp { sum, average, max };

// What a collective carries (for messages) and how long it may wait for the other ranks.
struct CollectiveCall {
  std::string_view what;  // "gradients", "initial weights"
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string_view name() const = 0;  // "single", "mpi", "gloo"
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // A line for headers and `gpuml info`: the engine and its library version.
  virtual std::string description() const = 0;

  // Every rank's `values` replaced by their element-wise sum (average: divided by the world
  // size; max). Same length on every rank.
  virtual void all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) = 0;
  // `bytes` of rank `root` copied into every other rank's `bytes` (same length on every rank).
  virtual void broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) = 0;
  // Rank r's `mine` lands at all[r * mine.size(), (r + 1) * mine.size()) on every rank.
  virtual void all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) = 0;
  // `all` holds world_size() blocks of mine.size() floats (same length on every rank); rank r's
  // `mine` becomes the reduction over the ranks of their block r (average: divided by the world
  // size). The building block of sharded optimizer state (--zero 1, later).
  virtual void reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                              const CollectiveCall& call) = 0;
  // Returns once every rank has entered it.
  virtual void barrier(const CollectiveCall& call) = 0;
  // Ends every process of the job now (MPI_Abort; Gloo: this process exits, and its closed
  // connections fail the others' next collective), after printing `reason` on stderr, so that no
  // rank is left waiting for this one: for a rank that fails on its own (a bad file, a NaN)
  // while the others go on. Does nothing for one process.
  virtual void abort_job(std::string_view reason) noexcept {}
};

// The message of a collective that waited past its deadline: it names the rank, the collective,
// what it carried and the ranks it waited for.
std::string collective_timeout_message(int rank, int world_size, std::string_view collective, const CollectiveCall& call,
                                       double waited_seconds);
// The message of a collective that failed before its deadline because a peer went away (its
// connection closed: it died or exited); `cause` is the engine's own words.
std::string collective_failure_message(int rank, int world_size, std::string_view collective, const CollectiveCall& call,
                                       double waited_seconds, std::string_view cause);

// One process: every collective returns at once with its input (the sum over one rank is itself).
std::unique_ptr<Communicator> make_single_process_communicator();

// The engine open_communicator() picks for this placement, and its plugin file: "single" (none),
// "mpi" (libgpuml_mpi.so) for Open MPI's and Slurm's variables, "gloo" (libgpuml_gloo.so) for the
// torchrun variables. Opens nothing (`gpuml info` says which would be used).
struct CommunicatorChoice {
  std::string engine;
  std::string plugin_file;  // "" for "single"
};
CommunicatorChoice choose_communicator(const ProcessPlacement& placement);

// The communicator for this placement: "single" for one process; several processes started by
// Open MPI's mpirun (or srun with Open MPI's PMIx support) open the MPI plugin; the torchrun
// variables open the Gloo plugin, which meets the other ranks at MASTER_ADDR:MASTER_PORT+1 within
// `rendezvous_timeout`. Throws gpuml::Error with the reason when the job needs an engine this
// build lacks (the plugin not built or not loadable) or the rendezvous fails.
std::shared_ptr<Communicator> open_communicator(const ProcessPlacement& placement,
                                                std::chrono::milliseconds rendezvous_timeout = std::chrono::minutes(5));

// The communicator plugin ABI (as backend/plugin_loader.h's for backends): a plugin built from
// other headers is refused. Bump kCommunicatorInterfaceRevision when a virtual of Communicator
// changes.
inline constexpr int kCommunicatorInterfaceRevision = 2;  // 2: reduce_scatter, CommunicatorOpen::timeout
inline constexpr int kCommunicatorAbiVersion =
    kCommunicatorInterfaceRevision * 1000003 + static_cast<int>(sizeof(CollectiveCall) * 31 + sizeof(ProcessPlacement));

// What a communicator plugin's gpuml_comm_plugin_open() gets and fills.
struct CommunicatorOpen {
  const ProcessPlacement* placement = nullptr;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // for the rendezvous (Gloo)
  std::unique_ptr<Communicator> communicator;
  std::string reason;  // why there is none
};
using CommPluginAbiVersionFn = int (*)();
using CommPluginOpenFn = void (*)(CommunicatorOpen* request);
inline constexpr const char* kCommPluginAbiVersionSymbol = "gpuml_comm_plugin_abi_version";
inline constexpr const char* kCommPluginOpenSymbol = "gpuml_comm_plugin_open";

}  // namespace gpuml
