// Gradient buckets (train/gradient_buckets.h) against a fake communicator of two ranks whose peer
// holds the same numbers: which buckets are cut, the order they are launched in whatever order
// the gradients arrive, the sum they end with, and a failing collective.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>

#include "core/error.h"
#include "train/gradient_buckets.h"
#include "train/train_config.h"

namespace gpuml {
namespace {

// Rank 0 of 2; the peer's values equal this rank's, so a sum doubles them. Records each
// all-reduce's offset into `base` and length; fails the `fail_at`-th one (0-based; -1: never).
class TwinCommunicator : public Communicator {
 public:
  explicit TwinCommunicator(const float* base, int fail_at = -1) : base(base), fail_at_(fail_at) {}
  std::string_view name() const override { return "twin"; }
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  std::string description() const override { return "twin (test)"; }

  std::vector<std::pair<int64_t, int64_t>> launched() {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls;
  }
  std::vector<std::pair<int64_t, int64_t>> calls;  // (offset, length) in launch order
  std::vector<std::string> whats;

 protected:
  void do_all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) override {
    std::lock_guard<std::mutex> lock(mutex_);
    EXPECT_EQ(op, ReduceOp::sum);
    whats.emplace_back(call.what);
    if (static_cast<int>(calls.size()) == fail_at_)
      GPUML_FAIL(ErrorKind::Io, "{}", collective_timeout_message(0, 2, "all_reduce", call, 3.0));
    calls.emplace_back(values.data() - base, static_cast<int64_t>(values.size()));
    for (float& v : values) v *= 2;
  }
  void do_broadcast(std::span<std::byte>, int, const CollectiveCall&) override {}
  void do_all_gather(std::span<const std::byte>, std::span<std::byte>, const CollectiveCall&) override {}
  void do_reduce_scatter(std::span<const float>, std::span<float>, ReduceOp, const CollectiveCall&) override {}
  void do_barrier(const CollectiveCall&) override {}

 public:
  const float* base;

 private:
  std::mutex mutex_;
  int fail_at_;
};

// Four parameters of 100, 30, 200 and 6 floats, each padded to 64 floats (as ModelRunner lays
// them out): columns [0, 128), [128, 192), [192, 448), [448, 512).
std::vector<GradientRange> four_params() { return {{0, 128}, {128, 192}, {192, 448}, {448, 512}}; }

struct Fixture {
  explicit Fixture(size_t bucket_bytes, int fail_at = -1)
      : comm(std::make_shared<TwinCommunicator>(nullptr, fail_at)),
        buckets(std::make_unique<GradientBuckets>(comm, four_params(), bucket_bytes, std::chrono::seconds(5))) {
    comm->base = buckets->gradient().data();  // before any bucket can launch (begin_step)
  }
  std::shared_ptr<TwinCommunicator> comm;
  std::unique_ptr<GradientBuckets> buckets;
};

TEST(GradientBuckets, TinyBucketsHoldOneParameterEachFromTheLastAndTileTheBuffer) {
  GradientBuckets buckets(std::make_shared<TwinCommunicator>(nullptr), four_params(), 1, std::chrono::seconds(5));
  const std::vector<GradientRange>& b = buckets.buckets();
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].begin, 448);
  EXPECT_EQ(b[0].end, 512 + 4);  // the last parameter, then the 4 scalars
  EXPECT_EQ(b[1].begin, 192);
  EXPECT_EQ(b[1].end, 448);
  EXPECT_EQ(b[2].begin, 128);
  EXPECT_EQ(b[3].begin, 0);
  EXPECT_EQ(b[3].end, 128);
}

TEST(GradientBuckets, ABucketClosesOnceItHoldsItsBytes) {
  // 512 bytes: the last parameter (256 B) is not enough, with the third (1024 B) it is; then the
  // first two together.
  GradientBuckets buckets(std::make_shared<TwinCommunicator>(nullptr), four_params(), 512, std::chrono::seconds(5));
  ASSERT_EQ(buckets.buckets().size(), 2u);
  EXPECT_EQ(buckets.buckets()[0].begin, 192);
  EXPECT_EQ(buckets.buckets()[1].begin, 0);
  EXPECT_EQ(buckets.buckets()[1].end, 192);
  GradientBuckets one(std::make_shared<TwinCommunicator>(nullptr), four_params(), size_t{1} << 30,
                      std::chrono::seconds(5));
  ASSERT_EQ(one.buckets().size(), 1u);
  EXPECT_EQ(one.buckets()[0].begin, 0);
  EXPECT_EQ(one.buckets()[0].end, 516);
}

TEST(GradientBuckets, LaunchesInOrderWhateverOrderGradientsArriveInAndEndsWithTheSum) {
  std::mt19937_64 rng(std::random_device{}());
  Fixture f(1);
  GradientBuckets& buckets = *f.buckets;
  for (int step = 1; step <= 3; ++step) {
    f.comm->calls.clear();
    buckets.begin_step();
    std::span<float> g = buckets.gradient();
    std::uniform_real_distribution<float> uniform(-1, 1);
    std::vector<float> written(g.size(), 0.0f);
    for (const GradientRange& p : four_params())
      for (int64_t i = p.begin; i < p.begin + (p.end - p.begin) / 2; ++i) written[i] = g[i] = uniform(rng);
    // The first parameter (the last bucket) arrives first: nothing may launch before bucket 0.
    buckets.parameter_ready(0);
    buckets.parameter_ready(2);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(f.comm->launched().empty()) << "a bucket launched before bucket 0 was complete";
    buckets.parameter_ready(3);
    buckets.scalars_ready({2.5f * 64, 64, 50, 64});  // loss 2.5 over 64 rows, 50 right
    buckets.parameter_ready(1);
    buckets.backward_done();
    const ReducedStep r = buckets.finish(step);
    const auto calls = f.comm->launched();
    ASSERT_EQ(calls.size(), 4u);
    EXPECT_EQ(calls[0], (std::pair<int64_t, int64_t>{448, 68}));
    EXPECT_EQ(calls[1], (std::pair<int64_t, int64_t>{192, 256}));
    EXPECT_EQ(calls[2], (std::pair<int64_t, int64_t>{128, 64}));
    EXPECT_EQ(calls[3], (std::pair<int64_t, int64_t>{0, 128}));
    EXPECT_DOUBLE_EQ(r.weight, 128);
    EXPECT_DOUBLE_EQ(r.loss_sum / r.weight, 2.5);
    EXPECT_DOUBLE_EQ(r.score, 100);
    EXPECT_EQ(r.rows, 128);
    // Both ranks' sums (2 x written; the update divides by r.weight); gaps stay zero.
    for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], written[i] * 2) << "column " << i;
  }
  EXPECT_EQ(f.comm->whats.back(), "gradients (bucket 4 of 4)");
  const AllReduceTimes& t = buckets.times();
  EXPECT_EQ(t.steps, 3);
  EXPECT_EQ(t.buckets, 4);
  EXPECT_GE(t.all_reduce_seconds, t.overlapped_seconds);
  EXPECT_GE(t.waited_seconds, 0);
}

TEST(GradientBuckets, AFailedCollectiveEndsTheStepWithItsMessage) {
  Fixture f(1, /*fail_at*/ 2);
  GradientBuckets& buckets = *f.buckets;
  buckets.begin_step();
  for (size_t p = 4; p-- > 0;) buckets.parameter_ready(p);
  buckets.scalars_ready({1, 1, 1, 1});
  buckets.backward_done();
  try {
    buckets.finish(7);
    FAIL() << "finish() returned after a failed all-reduce";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("all_reduce of gradients (bucket 3 of 4) waited"), std::string::npos) << e.message();
    EXPECT_EQ(e.kind(), ErrorKind::Io);
  }
  EXPECT_THROW(buckets.begin_step(), Error);  // the job must end: no further step
}

TEST(GradientBuckets, AbandonedStepLaunchesNothingMore) {
  Fixture f(1);
  f.buckets->begin_step();
  f.buckets->parameter_ready(3);
  f.buckets->scalars_ready({1, 1, 1, 1});
  f.buckets->abandon();
  const size_t launched = f.comm->launched().size();
  EXPECT_LE(launched, 1u);
  f.buckets->parameter_ready(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(f.comm->launched().size(), launched);
}

// A held step (a gradient graph with collective ops of its own, --sync-batchnorm): every bucket
// complete during backward, none launched before backward_done(), then all in the fixed order.
TEST(GradientBuckets, AHeldStepLaunchesNothingBeforeBackwardEndsThenEveryBucketInOrder) {
  Fixture f(1);
  GradientBuckets& buckets = *f.buckets;
  for (int step = 1; step <= 2; ++step) {
    f.comm->calls.clear();
    buckets.begin_step(/*hold*/ true);
    for (size_t p = 4; p-- > 0;) buckets.parameter_ready(p);
    buckets.scalars_ready({64, 64, 0, 64});
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(f.comm->launched().empty()) << "a held bucket launched before backward ended";
    buckets.backward_done();
    buckets.finish(step);
    const auto calls = f.comm->launched();
    ASSERT_EQ(calls.size(), 4u);
    EXPECT_EQ(calls[0].first, 448);
    EXPECT_EQ(calls[1].first, 192);
    EXPECT_EQ(calls[2].first, 128);
    EXPECT_EQ(calls[3].first, 0);
  }
  // Held steps overlap nothing; the next step without hold launches during backward again.
  EXPECT_EQ(buckets.times().held_steps, 2);
  EXPECT_EQ(buckets.times().overlapped_seconds, 0.0);
  f.comm->calls.clear();
  buckets.begin_step();
  buckets.parameter_ready(3);
  buckets.scalars_ready({64, 64, 0, 64});
  for (int i = 0; i < 200 && f.comm->launched().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(f.comm->launched().size(), 1u);
  for (size_t p = 3; p-- > 0;) buckets.parameter_ready(p);
  buckets.backward_done();
  buckets.finish(3);
  EXPECT_EQ(buckets.times().held_steps, 2);
}

TEST(GradientBuckets, TheConfigDefaultIsTheRunnersDefault) {
  EXPECT_EQ(static_cast<size_t>(TrainConfig{}.bucket_mb * (1 << 20)), kDefaultGradientBucketBytes);
}

}  // namespace
}  // namespace gpuml
