// Data parallelism's gradient all-reduce in buckets, started while backward still runs (as
// PyTorch DDP's reducer): the flat gradient (P,) is cut into buckets of whole parameters, taken
// from the last parameter to the first (the order backward produces them in), and a communication
// thread all-reduces each bucket as soon as all its parameters' gradients are in, while the
// training thread goes on with the rest of backward. The optimizer update waits for all of them.
//
//   GradientBuckets buckets(comm, {{0, 1024}, {1024, 1088}}, /*bucket_bytes*/ 1 << 20, 30s);
//   buckets.begin_step();
//   ... backward writes parameter 1's gradient (summed over this rank's rows) into
//       buckets.gradient()[1024, 1088), then:
//   buckets.parameter_ready(1);
//   ... parameter 0 likewise, and this rank's loss sums:
//   buckets.scalars_ready({loss * weight, weight, score, rows});
//   buckets.backward_done();
//   ReducedStep r = buckets.finish(step);   // waits; gradient() is now the sum over the ranks
//   ... the update divides it by r.weight (optim::emit_update's grad_scale: no pass of its own)
//
// Every rank must cut the same buckets and launch them in the same order, or the collectives
// would pair the wrong data: buckets depend only on the parameter layout and bucket_bytes (which
// the ranks check agree at start, train/data_parallel.h), and bucket k is launched after bucket
// k - 1 whatever order the gradients arrive in (or, held, all of them after backward). The
// communication thread is the only caller of the communicator between begin_step() and finish()
// that GradientBuckets makes (a held step leaves it to a backward that calls it itself); a
// collective past its deadline (a dead or stalled peer) ends the step: finish() rethrows its
// Error, naming the rank and the bucket.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backend/communicator.h"

namespace gpuml {

// PyTorch DDP's default is 25 MB, larger than the whole gradient of the small models this was
// measured on; 1 MB measured best on the 2-core machine (BENCHMARKS.md, data parallelism).
inline constexpr size_t kDefaultGradientBucketBytes = size_t{1} << 20;

// Columns [begin, end) of the flat gradient that one parameter fills, its alignment gap included
// (the gap stays zero). The ranges are in state_dict order and tile [0, P).
struct GradientRange {
  int64_t begin = 0, end = 0;
};

// What the all-reduce of one step gives back besides the gradient: the sums over the ranks.
struct ReducedStep {
  double loss_sum = 0;  // sum over ranks of loss * weight
  double weight = 0;    // rows, or counted tokens
  double score = 0;
  int64_t rows = 0;
};

// Times summed over the steps since construction, from the training thread's point of view.
struct AllReduceTimes {
  int64_t steps = 0;
  int buckets = 0;                // per step
  double all_reduce_seconds = 0;  // inside the collectives (the communication thread)
  double overlapped_seconds = 0;  // the part of it before backward_done() (hidden behind backward)
  double waited_seconds = 0;      // finish() waiting after backward_done() (what the step lost)
  int64_t held_steps = 0;         // steps whose buckets were held until backward_done() (begin_step)
  bool scattered = false;         // reduce-scattered (the constructor's `scatter`), not all-reduced
};

class GradientBuckets {
 public:
  // `bucket_bytes` > 0: a bucket closes once its parameters hold at least this many bytes (one
  // parameter larger than that is a bucket of its own). `scatter` (--zero 1): one bucket, reduce-
  // scattered: each rank gets the sum of only its share of the columns (shard_gradient()), rank r
  // columns [r * n, (r + 1) * n) with n = ceil(P / ranks), zeros past P.
  GradientBuckets(std::shared_ptr<Communicator> comm, std::vector<GradientRange> params, size_t bucket_bytes,
                  std::chrono::milliseconds timeout, bool scatter = false);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // (P,) host memory where each parameter's gradient goes, weighted by this rank's share (the sum
  // over its rows, not the mean); after finish(), the sum over every rank's rows, which divided by
  // ReducedStep::weight is the global batch's mean. Gaps are zero.
  std::span<float> gradient() { return {host_.data(), static_cast<size_t>(param_count_)}; }
  // With `scatter`, after finish(): this rank's share of the sum over the ranks (n columns).
  std::span<float> shard_gradient() { return shard_; }
  // Resets what arrived. The previous step must have finished. `hold`: launch nothing before
  // backward_done(), then every bucket in the fixed order (no overlap). For a backward that uses
  // the communicator itself (synchronised BatchNorm's all_reduce_sum ops, on the training thread):
  // the communicator is not used by two threads at once (MPI is THREAD_SERIALIZED), and every rank
  // issues the graph's collectives and then the buckets' in one order, whatever the timing.
  void begin_step(bool hold = false);
  // Parameter `index`'s columns of gradient() are written: its bucket may be launched.
  void parameter_ready(size_t index);
  // This rank's loss * weight, weight, score and rows: they ride in the first bucket.
  void scalars_ready(const std::array<float, 4>& scalars);
  // Marks the end of backward, for the overlap measurement; launches the held buckets (begin_step).
  void backward_done();
  // Waits for every bucket; rethrows a collective's Error. gradient() is then the global sum.
  // `step` is for messages.
  ReducedStep finish(int64_t step);
  // Drops buckets not yet launched (the step failed on this rank) and waits for the one in flight.
  void abandon() noexcept;

  // Bucket k's columns [begin, end) of the host buffer (bucket 0 also holds the 4 scalars, after
  // column P), in launch order: for tests and the run's summary.
  const std::vector<GradientRange>& buckets() const { return buckets_; }
  const AllReduceTimes& times() const { return times_; }

 private:
  using Clock = std::chrono::steady_clock;
  void arrived(size_t bucket);  // one of its parts (a parameter, the scalars) is in; lock held
  void launch_ready();          // queues the next buckets whose parts are all in; lock held
  void communicate();           // the communication thread

  std::shared_ptr<Communicator> comm_;
  std::chrono::milliseconds timeout_;
  bool scatter_ = false;
  int64_t param_count_ = 0;
  int64_t scalars_at_ = 0;                  // P, or with scatter n x ranks
  std::vector<float> host_;                 // the gradient (P,), zeros to scalars_at_, then the 4 scalars
  std::vector<float> shard_;                // with scatter: this rank's share of the sum
  std::vector<GradientRange> buckets_;      // launch order: the last parameters first
  std::vector<size_t> bucket_of_param_;     // parameter -> bucket
  std::vector<int> parts_;                  // bucket -> parameters (+ scalars for bucket 0)
  std::vector<int> missing_;                // this step: bucket -> parts not yet in
  size_t next_launch_ = 0;                  // buckets launched this step
  bool hold_ = false;                       // this step launches at backward_done() (begin_step)
  std::vector<std::pair<Clock::time_point, Clock::time_point>> spans_;  // bucket -> its collective
  Clock::time_point backward_end_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<size_t> queue_;  // launched, not yet taken by the thread
  size_t reduced_ = 0;        // buckets done this step
  bool busy_ = false;         // the thread is inside a collective
  bool stop_ = false;
  std::exception_ptr error_;
  AllReduceTimes times_;
  std::thread thread_;
};

}  // namespace gpuml
