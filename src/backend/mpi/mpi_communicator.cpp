// The MPI communicator (backend/communicator.h), built as libgpuml_mpi.so so that only a job
// launched by mpirun maps Open MPI (the core library and the GPU bundle link no MPI).
//
// Collectives are MPI's non-blocking ones (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgather,
// MPI_Ibarrier; reduce-scatter a ring of MPI_Isend/MPI_Irecv), completed by polling MPI_Test against the call's
// deadline: a peer that stalls (SIGSTOP, a deadlock) would leave a blocking call waiting for
// ever. Past the deadline the rank prints which collective waited and calls MPI_Abort, which ends
// every rank of the job (the others are stuck in the same collective). A peer that dies is mostly noticed by mpirun first, which
// then ends the job naming it ("mpirun noticed that process rank 1 ... exited on signal 9").
#include <dlfcn.h>
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backend/communicator.h"

namespace gpuml {

namespace {

using Clock = std::chrono::steady_clock;

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<size_t>(length));
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string v(text, static_cast<size_t>(length));
  if (size_t comma = v.find(','); comma != std::string::npos) v.resize(comma);  // "Open MPI v4.1.4"
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ' || v.back() == '\0')) v.pop_back();
  return v;
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(bool finalize) : finalize_(finalize) {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    // Errors come back as codes (turned into gpuml::Error here) rather than ending the process
    // inside MPI with a message that names no collective.
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  ~MpiCommunicator() override {
    // A rank that leaves while the others may still be inside a collective (a timeout, an
    // exception unwinding through its owner) must not MPI_Finalize: that waits for them, and
    // they wait for it. Ending the job is the loud, prompt way out.
    if (!broken_.empty()) abort_job(broken_);
    if (std::uncaught_exceptions() > 0) abort_job("an error on this rank (above) ends the job");
    MPI_Comm_free(&comm_);
    if (finalize_) MPI_Finalize();
  }

  std::string_view name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string description() const override {
    return fmt::format("MPI ({}), rank {} of {}", mpi_library_version(), rank_, size_);
  }

  void abort_job(std::string_view reason) noexcept override {
    std::fprintf(stderr, "gpuml: rank %d of %d: ending the job (MPI_Abort): %.*s\n", rank_, size_,
                 static_cast<int>(reason.size()), reason.data());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 protected:
  // Sizes checked, buffers non-empty and `op` sum or max by Communicator's public collectives.
  void do_all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) override {
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_FLOAT,
                         op == ReduceOp::max ? MPI_MAX : MPI_SUM, comm_, &request),
          "MPI_Iallreduce");
    wait(request, "all_reduce", call);
  }

  void do_broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) override {
    MPI_Request request;
    check(MPI_Ibcast(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, root, comm_, &request), "MPI_Ibcast");
    wait(request, "broadcast", call);
  }

  void do_all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) override {
    MPI_Request request;
    // In place, Open MPI skips the copy of this rank's slot (0.47 MB of 0.94: 19 us against 71).
    const void* send = in_place_gather(mine, all) ? MPI_IN_PLACE : mine.data();
    check(MPI_Iallgather(send, static_cast<int>(mine.size()), MPI_BYTE, all.data(), static_cast<int>(mine.size()),
                         MPI_BYTE, comm_, &request),
          "MPI_Iallgather");
    wait(request, "all_gather", call);
  }

  // A ring over MPI's point-to-point messages rather than MPI_Ireduce_scatter_block, which Open
  // MPI's libnbc runs as a reduction to one rank and a scatter: 196 us for 0.94 MB between 2 ranks
  // on the 2-core machine, against 40 us for the ring's one exchange of halves (BENCHMARKS.md).
  // Step s of N - 1: this rank sends its running sum of block (r - s - 1) mod N to rank r + 1 and
  // adds rank r - 1's running sum of block (r - s - 2) mod N to its own values of that block; after
  // the last step it holds block r summed over every rank. The sum's order depends on the rank
  // (with 2 ranks a + b either way: the same bits as an all-reduce).
  void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                         const CollectiveCall& call) override {
    const size_t n = mine.size();
    if (size_ == 1) {
      std::copy(all.begin(), all.end(), mine.begin());
      return;
    }
    const int next = (rank_ + 1) % size_, previous = (rank_ + size_ - 1) % size_;
    auto block = [&](int b) { return all.data() + static_cast<size_t>((b % size_ + size_) % size_) * n; };
    // Members, not locals: if a wait throws (the deadline), MPI may still write into them until
    // the job ends.
    std::vector<float>& sending = ring_sending_;
    std::vector<float>& received = ring_received_;
    sending.assign(block(rank_ - 1), block(rank_ - 1) + n);
    received.resize(n);
    for (int step = 0; step < size_ - 1; ++step) {
      MPI_Request requests[2];
      check(MPI_Irecv(received.data(), static_cast<int>(n), MPI_FLOAT, previous, kReduceScatterTag, comm_, &requests[0]),
            "MPI_Irecv");
      check(MPI_Isend(sending.data(), static_cast<int>(n), MPI_FLOAT, next, kReduceScatterTag, comm_, &requests[1]),
            "MPI_Isend");
      wait(requests, "reduce_scatter", call);
      const float* own = block(rank_ - step - 2);
      float* sum = step == size_ - 2 ? mine.data() : sending.data();
      if (op == ReduceOp::max)
        for (size_t i = 0; i < n; ++i) sum[i] = std::max(own[i], received[i]);
      else
        for (size_t i = 0; i < n; ++i) sum[i] = own[i] + received[i];
    }
  }

  void do_barrier(const CollectiveCall& call) override {
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    wait(request, "barrier", call);
  }

 private:
  void check(int code, const char* call) {
    if (code != MPI_SUCCESS) GPUML_FAIL(ErrorKind::Io, "rank {}: {} failed: {}", rank_, call, mpi_error_text(code));
  }

  // Polls the request until it completes or the deadline passes. The first 2 ms spin (the other
  // ranks are usually already there, and MPI progresses only inside MPI_Test), yielding between
  // tests so that the training thread, when gradient buckets are all-reduced on a thread of their
  // own while backward goes on, keeps its core; after that each test sleeps 200 us, so a rank
  // waiting for a slow or stalled peer leaves its core to others.
  void wait(MPI_Request& request, const char* collective, const CollectiveCall& call) {
    wait(std::span<MPI_Request>(&request, 1), collective, call);
  }
  void wait(std::span<MPI_Request> requests, const char* collective, const CollectiveCall& call) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point spin_until = start + std::chrono::milliseconds(2);
    const Clock::time_point deadline = start + call.timeout;
    for (;;) {
      int done = 0;
      const int code = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS)
        GPUML_FAIL(ErrorKind::Io, "rank {} of {}: {} of {} failed: {}", rank_, size_, collective, call.what,
                   mpi_error_text(code));
      if (done) return;
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        broken_ = collective_timeout_message(rank_, size_, collective, call,
                                             std::chrono::duration<double>(now - start).count());
        GPUML_FAIL(ErrorKind::Io, "{}", broken_);
      }
      if (now >= spin_until) std::this_thread::sleep_for(std::chrono::microseconds(200));
      else std::this_thread::yield();  // a thread of this rank that has work (backward) goes first
    }
  }

  static constexpr int kReduceScatterTag = 4242;  // on comm_, which only gpuml's collectives use
  std::vector<float> ring_sending_, ring_received_;  // do_reduce_scatter's buffers
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool finalize_ = false;
  std::string broken_;  // set when a collective passed its deadline: the job must end
};

// Open MPI's non-blocking all-reduce (coll/libnbc) picks a binomial tree whenever the job has
// fewer than 4 ranks or the buffer is MPI_IN_PLACE, as gradient buckets are: the whole buffer goes
// up the tree and back down. The ring (reduce-scatter, then all-gather) moves each rank's share
// once. Measured on the 2-core machine, 2 ranks (BENCHMARKS.md, data parallelism): 1 MB in 152 us
// against 246 us, 4 MB in 2.1 ms against 5.2 ms, the same below 4 KB. A value the user set
// (mpirun --mca coll_libnbc_iallreduce_algorithm N, or the variable) is kept; Open MPI reads it
// in MPI_Init. Other MPIs ignore the variable.
void prefer_ring_all_reduce() {
#ifdef OPEN_MPI
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring", /*overwrite*/ 0);
#endif
}

}  // namespace

}  // namespace gpuml

extern "C" int gpuml_comm_plugin_abi_version() { return gpuml::kCommunicatorAbiVersion; }

extern "C" void gpuml_comm_plugin_open(gpuml::CommunicatorOpen* request) {
  try {
    // gpuml opens this plugin RTLD_LOCAL; Open MPI opens its own components (transports) later,
    // and they resolve symbols of libmpi: make libmpi's symbols global first.
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) != 0 && info.dli_fname != nullptr)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      gpuml::prefer_ring_all_reduce();
      int provided = 0;
      // Only the thread that trains calls MPI (the loaders' threads never do), one call at a time.
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        request->reason = "MPI_Init_thread failed";
        return;
      }
    }
    auto comm = std::make_unique<gpuml::MpiCommunicator>(!initialised);
    const gpuml::ProcessPlacement& p = *request->placement;
    if (comm->rank() != p.rank || comm->world_size() != p.world_size) {
      request->reason = fmt::format("MPI says rank {} of {}, but the environment says {}: was this process started "
                                    "by another launcher than the one its variables name?",
                                    comm->rank(), comm->world_size(), gpuml::describe_placement(p));
      return;
    }
    request->communicator = std::move(comm);
  } catch (const std::exception& e) {
    request->reason = e.what();
  }
}
