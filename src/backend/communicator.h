// Collectives across the processes of one job (data parallelism), beside streams and events in
// the backend layer. Each engine is a loadable plugin, as the CUDA backend is, so that the core
// library links no MPI, Gloo nor NCCL: libgpuml_mpi.so is opened when mpirun or srun started
// several processes, libgpuml_gloo.so when the torchrun variables did (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT; backend/process_env.h), and NCCL lives in the CUDA plugin
// (libgpuml_cuda.so, backend/cuda/nccl_communicator.cpp) beside the GPU memory it works on. gpuml
// has no transport of its own: Gloo's TCP pairs carry the data; the only socket code of gpuml's
// is Gloo's rendezvous store (backend/gloo/tcp_store.h), since Debian's Gloo has none that speaks
// TCP.
//
//   ProcessPlacement me = detect_process_placement(environment_of_this_process());
//   std::shared_ptr<Communicator> comm = open_communicator(me, 30s);   // "single" for one process
//   comm->broadcast(as_writable_bytes(std::span(weights)), /*root*/ 0, {"weights", 30s});
//   comm->all_reduce(std::span(gradients), ReduceOp::average, {"gradients", 30s});
//   // On a GPU: NCCL for the gradients in device memory; `comm` stays for host-side collectives.
//   std::shared_ptr<Communicator> nccl = open_device_communicator(gpu_backend, comm, 30s);
//   nccl->all_reduce({device_gradients, n}, ReduceOp::sum, {"gradients", 30s});
//
// Buffers are host memory, except for a communicator whose memory_device() is a GPU (NCCL): its
// collectives take that GPU's memory without a copy, and host memory too (staged through device
// buffers). Every collective takes a deadline: a peer that died, exited or stalled makes the call
// fail with a gpuml::Error (ErrorKind::Io) that names this rank, the collective and what it
// carried, never a hang. An implementation may end the whole job then (MPI_Abort), since the
// other ranks are stuck in the same collective.
//
// The public collectives are not virtual: they check the sizes (the same on every engine), skip
// empty buffers (the same length on every rank, so every rank skips), turn an average into a sum
// and a scale(), and then call the engine's protected do_* virtual. An engine implements the
// transfer only.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "backend/process_env.h"
#include "core/device.h"
#include "core/error.h"

namespace gpuml {

class Backend;
class Stream;

enum class ReduceOp { sum, average, max };

// What a collective carries (for messages) and how long it may wait for the other ranks.
struct CollectiveCall {
  std::string_view what;  // "gradients", "initial weights"
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // A device engine (NCCL) on device memory: the stream whose earlier work the collective waits
  // for (nullptr: the backend's default stream). The call still returns when the result is there.
  Stream* stream = nullptr;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string_view name() const = 0;  // "single", "mpi", "gloo", "nccl"
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // A line for headers and `gpuml info`: the engine and its library version.
  virtual std::string description() const = 0;
  // The memory the collectives work on without a copy: the host's ({cpu, 0}) for single, MPI and
  // Gloo; the GPU's (cuda:N) for NCCL, which takes host memory too (staged).
  virtual Device memory_device() const { return {DeviceType::cpu, 0}; }

  // Every rank's `values` replaced by their element-wise sum (average: divided by the world
  // size; max). Same length on every rank.
  void all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call);
  // `bytes` of rank `root` copied into every other rank's `bytes` (same length on every rank).
  void broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call);
  // Rank r's `mine` lands at all[r * mine.size(), (r + 1) * mine.size()) on every rank. `mine`
  // may be that very slot of `all` (in place: nothing of this rank's is copied); otherwise the two
  // must not overlap.
  void all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call);
  // `all` holds world_size() blocks of mine.size() floats (same length on every rank); rank r's
  // `mine` becomes the reduction over the ranks of their block r (average: divided by the world
  // size). The building block of sharded optimizer state (--zero 1, later).
  void reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op, const CollectiveCall& call);
  // Returns once every rank has entered it.
  void barrier(const CollectiveCall& call);
  // Ends every process of the job now (MPI_Abort; Gloo: this process exits, and its closed
  // connections fail the others' next collective), after printing `reason` on stderr, so that no
  // rank is left waiting for this one: for a rank that fails on its own (a bad file, a NaN)
  // while the others go on. Does nothing for one process.
  virtual void abort_job(std::string_view reason) noexcept {}

 protected:
  // What an engine implements, called by the public collectives above with checked sizes,
  // non-empty buffers, a root in [0, world_size()) and `op` sum or max (never average).
  virtual void do_all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) = 0;
  virtual void do_broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) = 0;
  // `mine` may be this rank's slot of `all` (in place; in_place_gather() says so).
  virtual void do_all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) = 0;
  bool in_place_gather(std::span<const std::byte> mine, std::span<std::byte> all) const {
    return mine.data() == all.data() + static_cast<size_t>(rank()) * mine.size();
  }
  virtual void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                                 const CollectiveCall& call) = 0;
  virtual void do_barrier(const CollectiveCall& call) = 0;
  // `values` multiplied by `factor` where they lie (an average is a sum, then this): a loop on the
  // host here; NCCL overrides it for device memory.
  virtual void scale(std::span<float> values, float factor, const CollectiveCall& call);
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

// What the CUDA plugin's gpuml_device_comm_open() gets and fills: NCCL on `device_backend`'s GPU.
// The CUDA plugin exports gpuml_comm_plugin_abi_version() too, checked first.
struct DeviceCommunicatorOpen {
  Backend* device_backend = nullptr;    // this rank's GPU (a CUDA backend of the same plugin)
  std::shared_ptr<Communicator> host;   // carries NCCL's unique id from rank 0; nullptr: one rank
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // for the id and NCCL's init
  std::unique_ptr<Communicator> communicator;
  std::string reason;  // why there is none
};
using DeviceCommOpenFn = void (*)(DeviceCommunicatorOpen* request);
inline constexpr const char* kDeviceCommOpenSymbol = "gpuml_device_comm_open";

// The communicator plugin ABI (as backend/plugin_loader.h's for backends): a plugin built from
// other headers is refused. Bump kCommunicatorInterfaceRevision when a virtual of Communicator
// changes.
// 2: reduce_scatter, CommunicatorOpen::timeout. 3: public collectives non-virtual over protected
// do_* virtuals, scale(), memory_device(), CollectiveCall::stream, DeviceCommunicatorOpen.
inline constexpr int kCommunicatorInterfaceRevision = 3;
inline constexpr int kCommunicatorAbiVersion =
    kCommunicatorInterfaceRevision * 1000003 +
    static_cast<int>(sizeof(CollectiveCall) * 31 + sizeof(ProcessPlacement) * 7 + sizeof(DeviceCommunicatorOpen));

// Which engine carries the gradients of a data-parallel step. "host": the job's communicator, on
// a host copy of the gradient (MPI, Gloo). "nccl": NCCL on the GPU's memory, no host copy; the
// job's communicator stays for the host-side collectives (the configuration check, the initial
// broadcast) and carries NCCL's unique id.
struct GradientEngineChoice {
  std::string engine;  // "host" or "nccl"
  std::string why;     // for messages: "GPUML_COMM=nccl", "a GPU and 2 ranks", ...
};
// The request in GPUML_COMM: "auto" (unset or empty), "nccl" or "host"; anything else throws
// naming the variable and the values it takes.
std::string gradient_engine_request(const Environment& env);
// auto: NCCL when the model trains on a GPU and the job has several ranks, else host; nccl: NCCL
// whatever the world size (one rank: the GPU check times NCCL against one process), refused with
// the reason when the model trains on the host; host: host.
GradientEngineChoice choose_gradient_engine(std::string_view request, bool trains_on_gpu, int world_size);

// NCCL on `device_backend`'s GPU (the CUDA plugin's; each rank its local-rank GPU), its unique id
// broadcast from rank 0 over `host` (MPI or Gloo) within `timeout`, or made here when `host` is
// nullptr or has one rank. Throws gpuml::Error with the reason when the CUDA plugin was built
// without NCCL, libnccl.so.2 is not found, or NCCL's initialisation fails or passes the deadline.
std::shared_ptr<Communicator> open_device_communicator(Backend& device_backend, std::shared_ptr<Communicator> host,
                                                       std::chrono::milliseconds timeout);

}  // namespace gpuml
