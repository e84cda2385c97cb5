// The Gloo communicator (backend/communicator.h), built as libgpuml_gloo.so: CPU collectives over
// Gloo's TCP transport for processes started with the torchrun variables (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT), by torchrun itself or by any script that sets them.
//
// Meeting: rank 0 serves a small TCP store at MASTER_ADDR:MASTER_PORT+1 (backend/gloo/tcp_store.h);
// each rank binds Gloo to the local address it reaches MASTER_ADDR by (or to the interface in
// GLOO_SOCKET_IFNAME, PyTorch's variable), registers it, connects the full mesh, and a barrier
// lets rank 0 close the store. Collectives are Gloo's with the call's timeout: a stalled peer
// (SIGSTOP) ends the wait at the deadline, a dead one (its socket closed) at once; either way the
// rank throws a gpuml::Error naming itself, the collective and the peer, and gpuml's failure
// path (abort_job) exits, which closes this rank's connections and so fails the others' next
// collective at once: nobody hangs. Gloo has no job-wide abort as MPI has.
//
// reduce_scatter is an all-reduce of the whole buffer followed by taking this rank's block:
// Debian's Gloo offers reduce-scatter only as an old-style algorithm class without a deadline
// per call; this moves (world_size - 1) / world_size more bytes than a true reduce-scatter.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/transport/tcp/device.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/communicator.h"
#include "backend/gloo/tcp_store.h"

namespace gpuml {

namespace {

using Clock = std::chrono::steady_clock;

// The local IPv4 address this machine (network namespace) uses to reach `host`: the one its peers
// can reach it by, whatever the hostname resolves to. A UDP connect() sends nothing.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* resolved = nullptr;
  const int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &resolved);
  GPUML_CHECK_KIND(ErrorKind::Io, gai == 0 && resolved != nullptr,
                   "MASTER_ADDR={} does not resolve to an IPv4 address: {}", host,
                   gai_strerror(gai));
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  socklen_t length = sizeof local;
  const bool ok = fd >= 0 && ::connect(fd, resolved->ai_addr, resolved->ai_addrlen) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0;
  const std::string why = ok ? "" : std::strerror(errno);
  if (fd >= 0) ::close(fd);
  freeaddrinfo(resolved);
  GPUML_CHECK_KIND(ErrorKind::Io, ok, "no route from this machine to MASTER_ADDR={}: {}", host,
                   why);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof text);
  return text;
}

// gloo::sum and gloo::max are overloaded (a pointer form and an in-place form): pick the former.
gloo::AllreduceOptions::Func reduce_function(ReduceOp op) {
  using Pointwise = void (*)(void*, const void*, const void*, size_t);
  return op == ReduceOp::max ? static_cast<Pointwise>(&gloo::max<float>)
                             : static_cast<Pointwise>(&gloo::sum<float>);
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const ProcessPlacement& placement, std::chrono::milliseconds timeout)
      : rank_(placement.rank), size_(placement.world_size) {
    GPUML_CHECK(!placement.master_addr.empty() && placement.master_port > 0,
                "{}: the Gloo engine needs MASTER_ADDR and MASTER_PORT (rank 0's address and a "
                "free port; rank 0 "
                "listens on MASTER_PORT + 1)",
                describe_placement(placement));
    GPUML_CHECK(placement.master_port < 65535,
                "MASTER_PORT={}: rank 0 listens on MASTER_PORT + 1, not a port",
                placement.master_port);
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    if (iface != nullptr && *iface == '\0') iface = nullptr;
    GPUML_CHECK(iface == nullptr || if_nametoindex(iface) != 0,
                "GLOO_SOCKET_IFNAME={}: this machine has no network interface of that name", iface ? iface : "");
    const Clock::time_point start = Clock::now();
    TcpStore store({.host = placement.master_addr,
                    .port = placement.master_port + 1,
                    .serve = rank_ == 0,
                    .rank = rank_,
                    .world_size = size_,
                    .timeout = timeout});
    gloo::transport::tcp::attr attr;
    if (iface != nullptr) {
      attr.iface = iface;
      address_ = std::string("interface ") + iface;
    } else {
      attr.hostname = local_address_towards(placement.master_addr, placement.master_port + 1);
      address_ = attr.hostname;
    }
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      auto context = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
      context->setTimeout(timeout);
      context->connectFullMesh(store, device_);
      context_ = std::move(context);
    } catch (const gloo::Exception& e) {
      GPUML_FAIL(
          ErrorKind::Io,
          "rank {} of {}: Gloo could not connect the ranks (this rank at {}) within {:.1f} s: {}",
          rank_, size_, address_, std::chrono::duration<double>(timeout).count(),
          first_line(e.what()));
    }
    // Every rank has read every address once every rank is past connectFullMesh: the store may go.
    barrier({"the rendezvous",
             std::max(std::chrono::milliseconds(0),
                      timeout - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                                      start))});
    store.stop_serving();
  }

  std::string_view name() const override { return "gloo"; }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string description() const override {
    return fmt::format("Gloo (TCP, {}), rank {} of {}", address_, rank_, size_);
  }

  // Gloo cannot end the other processes; exiting closes this rank's connections, which fails the
  // collective each other rank is in (or enters next) at once.
  void abort_job(std::string_view reason) noexcept override {
    std::fprintf(
        stderr,
        "gpuml: rank %d of %d: ending this rank (its peers' collectives fail as its connections "
        "close): %.*s\n",
        rank_, size_, static_cast<int>(reason.size()), reason.data());
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(1);
  }

 protected:
  // Sizes checked, buffers non-empty, the root valid and `op` sum or max by Communicator's
  // public collectives.
  void do_all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) override {
    run("all_reduce", call, [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(values.data(), values.size());
      opts.setReduceFunction(reduce_function(op));
      opts.setTimeout(call.timeout);
      gloo::allreduce(opts);
    });
  }

  void do_broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) override {
    run("broadcast", call, [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size());
      opts.setRoot(root);
      opts.setTimeout(call.timeout);
      gloo::broadcast(opts);
    });
  }

  void do_all_gather(std::span<const std::byte> mine, std::span<std::byte> all,
                     const CollectiveCall& call) override {
    // Gloo copies the input into the output's slot first: in place, from a copy of its own.
    std::vector<std::byte> own;
    if (in_place_gather(mine, all)) {
      own.assign(mine.begin(), mine.end());
      mine = own;
    }
    run("all_gather", call, [&] {
      gloo::AllgatherOptions opts(context_);
      opts.setInput(const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(mine.data())),
                    mine.size());
      opts.setOutput(reinterpret_cast<uint8_t*>(all.data()), all.size());
      opts.setTimeout(call.timeout);
      gloo::allgather(opts);
    });
  }

  void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                         const CollectiveCall& call) override {
    std::vector<float> whole(all.begin(), all.end());
    run("reduce_scatter", call, [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(whole.data(), whole.size());
      opts.setReduceFunction(reduce_function(op));
      opts.setTimeout(call.timeout);
      gloo::allreduce(opts);
    });
    const float* block = whole.data() + static_cast<size_t>(rank_) * mine.size();
    std::copy(block, block + mine.size(), mine.begin());
  }

  void do_barrier(const CollectiveCall& call) override {
    run("barrier", call, [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(call.timeout);
      gloo::barrier(opts);
    });
  }

 private:
  static std::string first_line(const char* text) {
    std::string s(text);
    if (size_t nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
    return s;
  }

  // Runs one Gloo collective; its exceptions become a gpuml::Error that names this rank, the
  // collective, what it carried and whether the deadline passed or a connection broke. After a
  // failure the mesh is in an unknown state: every later collective refuses at once.
  template <class Collective>
  void run(const char* collective, const CollectiveCall& call, Collective&& body) {
    GPUML_CHECK_KIND(ErrorKind::Io, broken_.empty(),
                     "rank {} of {}: {} of {}: an earlier collective failed ({})", rank_, size_,
                     collective, call.what, broken_);
    const Clock::time_point start = Clock::now();
    try {
      body();
    } catch (const gloo::Exception& e) {
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      const double deadline = std::chrono::duration<double>(call.timeout).count();
      const std::string cause = first_line(e.what());
      // Gloo says "Timed out waiting ...ms" when the deadline passed; anything else is a broken
      // connection (the peer's process ended: "Connection closed by peer", "Connection reset").
      const bool timed_out =
          waited >= 0.98 * deadline || cause.find("Timed out") != std::string::npos;
      broken_ = timed_out ? collective_timeout_message(rank_, size_, collective, call, waited) +
                                " (Gloo: " + cause + ")"
                          : collective_failure_message(rank_, size_, collective, call, waited,
                                                       "Gloo: " + cause);
      GPUML_FAIL(ErrorKind::Io, "{}", broken_);
    }
  }

  int rank_ = 0, size_ = 1;
  std::string address_;  // where this rank's Gloo listens, for messages
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  std::string broken_;
};

}  // namespace

}  // namespace gpuml

extern "C" int gpuml_comm_plugin_abi_version() {
  return gpuml::kCommunicatorAbiVersion;
}

extern "C" void gpuml_comm_plugin_open(gpuml::CommunicatorOpen* request) {
  try {
    request->communicator =
        std::make_unique<gpuml::GlooCommunicator>(*request->placement, request->timeout);
  } catch (const std::exception& e) {
    request->reason = e.what();
  }
}
