// BatchNorm under data parallelism, with the ranks as threads of this process
// (tests/thread_communicator.h); the same code paths run under mpirun and Gloo in tests/dist.
//
// - Synchronised BatchNorm (all_reduce_sum in the graph) on two ranks of 3 and 5 rows gives, in
//   float64, the forward values, the gradients (x, weight, bias: a gradient check against the
//   batch_norm op, itself checked by central differences in tests/grad) and the running
//   statistics of the batch_norm op over all 8 rows, to 1e-10.
// - ModelRunner with set_sync_batch_norm on two ranks of 6 and 10 rows trains (5 Adam steps, f32,
//   ref backend) to the weights and buffers of one runner with the 16 rows, to 2e-6: the unequal
//   rows check the loss weighting (each rank's loss counts by its rows). A control without
//   synchronisation lands farther than that.
// - Without it (DDP's default), every rank holds rank 0's running statistics after each step,
//   and they are rank 0's own batches' statistics.
#include <gtest/gtest.h>

#include <exception>
#include <map>
#include <random>
#include <thread>

#include "backend/backend.h"
#include "backend/dispatch.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "nn/batch_norm.h"
#include "nn/model.h"
#include "thread_communicator.h"
#include "train/model_runner.h"

#include <nlohmann/json.hpp>

namespace gpuml {
namespace {

using testing::ThreadCommunicator;
using testing::ThreadGroup;

// Runs fn(rank, communicator) on `ranks` threads; rethrows the first rank's error.
template <typename Fn>
void on_ranks(int ranks, Fn fn) {
  auto group = std::make_shared<ThreadGroup>(ranks);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r, std::make_shared<ThreadCommunicator>(group, r));
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng, double mean = 0.0) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = mean + std::normal_distribution<double>()(rng);
  return Tensor::from_values(shape, v, dtype);
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// --- the graph: BatchNorm2d's forward and backward in float64 ---------------------------------

struct BatchNormRun {
  std::vector<double> y, dx, dweight, dbias, running_mean, running_var;
};

// loss = sum(BatchNorm2d(x) * r) in training mode; `sync`: ForwardContext::sync_batch_norm, its
// all_reduce_sums through `comm` (nullptr: one process).
BatchNormRun run_batch_norm(const Tensor& x, const Tensor& r, const std::map<std::string, Tensor>& params, bool sync,
                            Communicator* comm) {
  const int64_t channels = x.dim(1);
  Graph g;
  std::map<std::string, Sym> values;
  std::map<std::string, Tensor> feeds = params;
  for (const auto& [name, t] : params) values[name] = g.input(name, {t.shape(), t.dtype()});
  Sym xs = g.input("x", {x.shape(), DType::f64});
  Sym rs = g.input("r", {r.shape(), DType::f64});
  feeds["x"] = x;
  feeds["r"] = r;
  nn::ForwardContext ctx(g, true, [&](const std::string& name) { return values.at(name); });
  ctx.sync_batch_norm = sync;
  Sym y = nn::BatchNorm2d(channels).forward(xs, ctx, "");
  std::vector<Sym> grads = gradients(g, sum(mul(y, rs)), {xs, values.at("weight"), values.at("bias")});
  std::vector<Sym> outputs{y, grads[0], grads[1], grads[2]};
  for (const auto& [name, update] : ctx.buffer_updates)
    if (name == "running_mean" || name == "running_var") outputs.push_back(update);
  PlanOptions plan;
  plan.backends = {&backend_registry().reference()};
  Executor executor(plan_graph(g, outputs, plan));
  RunOptions run;
  run.collectives.communicator = comm;
  run.collectives.timeout = std::chrono::seconds(20);
  std::vector<Tensor> out = executor.run(feeds, run);
  return {out[0].to_doubles(), out[1].to_doubles(), out[2].to_doubles(),
          out[3].to_doubles(), out[4].to_doubles(), out[5].to_doubles()};
}

std::vector<double> rows_of(const std::vector<double>& all, int64_t row_size, int64_t begin, int64_t end) {
  return {all.begin() + begin * row_size, all.begin() + end * row_size};
}

TEST(SyncBatchNorm, TwoRanksGiveTheBatchNormOpOverTheWholeBatchInFloat64) {
  std::mt19937_64 rng(std::random_device{}());
  const int64_t channels = 3, h = 4, w = 5, row_size = channels * h * w;
  const std::vector<int64_t> bounds{0, 3, 8};  // rank 0: rows [0, 3), rank 1: [3, 8)
  Tensor x = random_tensor({8, channels, h, w}, DType::f64, rng, 0.5);
  Tensor r = random_tensor({8, channels, h, w}, DType::f64, rng);
  const std::map<std::string, Tensor> params{
      {"weight", random_tensor({channels}, DType::f64, rng, 1.0)},
      {"bias", random_tensor({channels}, DType::f64, rng)},
      {"running_mean", random_tensor({channels}, DType::f64, rng)},
      {"running_var", Tensor::from_values({channels}, {0.5, 1.0, 2.0}, DType::f64)},
      {"num_batches_tracked", Tensor::from_values({}, {3}, DType::i64)}};
  const BatchNormRun whole = run_batch_norm(x, r, params, false, nullptr);

  std::vector<BatchNormRun> ranks(2);
  on_ranks(2, [&](int rank, std::shared_ptr<Communicator> comm) {
    const int64_t begin = bounds[static_cast<size_t>(rank)], end = bounds[static_cast<size_t>(rank) + 1];
    ranks[static_cast<size_t>(rank)] = run_batch_norm(contiguous(x.slice(0, begin, end), backend_registry().reference()),
                                                      contiguous(r.slice(0, begin, end), backend_registry().reference()),
                                                      params, true, comm.get());
  });
  constexpr double kTolerance = 1e-10;  // float64: only the order of the additions differs
  std::vector<double> dweight(channels, 0.0), dbias(channels, 0.0);
  for (int rank = 0; rank < 2; ++rank) {
    SCOPED_TRACE(rank);
    const BatchNormRun& mine = ranks[static_cast<size_t>(rank)];
    const int64_t begin = bounds[static_cast<size_t>(rank)], end = bounds[static_cast<size_t>(rank) + 1];
    EXPECT_LT(max_abs_difference(mine.y, rows_of(whole.y, row_size, begin, end)), kTolerance);
    EXPECT_LT(max_abs_difference(mine.dx, rows_of(whole.dx, row_size, begin, end)), kTolerance);
    EXPECT_LT(max_abs_difference(mine.running_mean, whole.running_mean), kTolerance);
    EXPECT_LT(max_abs_difference(mine.running_var, whole.running_var), kTolerance);
    for (int64_t c = 0; c < channels; ++c) {
      dweight[c] += mine.dweight[c];  // each rank's share of the parameter gradients
      dbias[c] += mine.dbias[c];
    }
  }
  EXPECT_LT(max_abs_difference(dweight, whole.dweight), kTolerance);
  EXPECT_LT(max_abs_difference(dbias, whole.dbias), kTolerance);
  // The control: rank 0's rows normalised by their own statistics differ.
  const BatchNormRun alone = run_batch_norm(contiguous(x.slice(0, 0, 3), backend_registry().reference()),
                                            contiguous(r.slice(0, 0, 3), backend_registry().reference()), params,
                                            false, nullptr);
  EXPECT_GT(max_abs_difference(alone.y, rows_of(whole.y, row_size, 0, 3)), 1e-3);
  EXPECT_GT(max_abs_difference(alone.dx, rows_of(whole.dx, row_size, 0, 3)), 1e-3);
}

TEST(SyncBatchNorm, WithoutACommunicatorItIsTheBatchNormOp) {
  std::mt19937_64 rng(std::random_device{}());
  Tensor x = random_tensor({5, 2, 3, 3}, DType::f64, rng), r = random_tensor({5, 2, 3, 3}, DType::f64, rng);
  const std::map<std::string, Tensor> params{{"weight", random_tensor({2}, DType::f64, rng, 1.0)},
                                             {"bias", random_tensor({2}, DType::f64, rng)},
                                             {"running_mean", Tensor::from_values({2}, {0, 0}, DType::f64)},
                                             {"running_var", Tensor::from_values({2}, {1, 1}, DType::f64)},
                                             {"num_batches_tracked", Tensor::from_values({}, {0}, DType::i64)}};
  const BatchNormRun op = run_batch_norm(x, r, params, false, nullptr);
  const BatchNormRun synced = run_batch_norm(x, r, params, true, nullptr);
  for (auto [a, b] : {std::pair{&op.y, &synced.y}, {&op.dx, &synced.dx}, {&op.dweight, &synced.dweight},
                      {&op.running_var, &synced.running_var}})
    EXPECT_LT(max_abs_difference(*a, *b), 1e-10);
}

TEST(SyncBatchNorm, AllReduceSumAddsEveryRanksValuesInRankOrder) {
  std::vector<std::vector<double>> got(3);
  on_ranks(3, [&](int rank, std::shared_ptr<Communicator> comm) {
    Graph g;
    Sym x = g.input("x", {{2, 2}, DType::f32});
    PlanOptions plan;
    plan.backends = {&backend_registry().get("cpu"), &backend_registry().reference()};
    Executor executor(plan_graph(g, {all_reduce_sum(x)}, plan));
    RunOptions run;
    run.collectives.communicator = comm.get();
    run.collectives.timeout = std::chrono::seconds(20);
    const double b = rank + 1;
    got[static_cast<size_t>(rank)] =
        executor.run({{"x", Tensor::from_values({2, 2}, {b, 10 * b, 0.1 * b, -b}, DType::f32)}}, run)[0].to_doubles();
  });
  for (const std::vector<double>& g : got) {
    EXPECT_EQ(g, got[0]);  // the same bits on every rank
    EXPECT_NEAR(g[0], 6, 1e-6);
    EXPECT_NEAR(g[1], 60, 1e-5);
    EXPECT_NEAR(g[2], 0.6, 1e-6);
    EXPECT_NEAR(g[3], -6, 1e-6);
  }
}

// --- ModelRunner: data-parallel training steps ------------------------------------------------

// No bias before a BatchNorm (as one writes it in PyTorch): its gradient is zero up to rounding,
// which Adam divides by its own tiny magnitude into steps of lr in random directions.
nn::Model conv_batch_norm_model() {
  return nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [3, 6, 6], "layers": [
      {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
      {"type": "BatchNorm2d", "num_features": 4}, {"type": "ReLU"}, {"type": "Flatten"},
      {"type": "Linear", "in_features": 144, "out_features": 5}]})"));
}

struct Batches {
  std::vector<Tensor> x, y;  // per step: (16, 3, 6, 6) f32, (16) i64
};
Batches make_batches(int steps, int64_t rows, const Shape& sample, std::mt19937_64& rng) {
  Batches b;
  for (int s = 0; s < steps; ++s) {
    Shape shape{rows};
    shape.insert(shape.end(), sample.begin(), sample.end());
    b.x.push_back(random_tensor(shape, DType::f32, rng, 0.3));
    std::vector<double> labels(static_cast<size_t>(rows));
    for (double& l : labels) l = static_cast<double>(rng() % 3);
    b.y.push_back(Tensor::from_values({rows}, labels, DType::i64));
  }
  return b;
}

PlanOptions ref_plan() {
  PlanOptions plan;
  plan.backends = {&backend_registry().reference()};
  return plan;
}

std::map<std::string, std::vector<double>> as_values(const NamedTensors& tensors) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : tensors) out[name] = t.to_doubles();
  return out;
}

double max_difference(const std::map<std::string, std::vector<double>>& a,
                      const std::map<std::string, std::vector<double>>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, values] : a) {
    EXPECT_TRUE(b.count(name)) << name;
    if (b.count(name)) worst = std::max(worst, max_abs_difference(values, b.at(name)));
  }
  return worst;
}

// The model's tensors after `steps` data-parallel steps on two ranks, rank r taking rows
// [bounds[r], bounds[r + 1]) of each batch; one map per rank.
std::vector<std::map<std::string, std::vector<double>>> train_two_ranks(const nn::Model& model, const Batches& batches,
                                                                        const std::vector<int64_t>& bounds, bool sync,
                                                                        size_t bucket_bytes = kDefaultGradientBucketBytes) {
  optim::OptimizerConfig adam;
  adam.lr = 1e-2;
  std::vector<std::map<std::string, std::vector<double>>> out(2);
  on_ranks(2, [&](int rank, std::shared_ptr<Communicator> comm) {
    // Different seeds: the initial broadcast must give every rank rank 0's start.
    ModelRunner runner(model, adam, ref_plan(), /*seed*/ 7 + static_cast<uint64_t>(rank));
    runner.set_sync_batch_norm(sync);
    runner.set_communicator(comm, std::chrono::seconds(20));
    runner.set_gradient_bucket_bytes(bucket_bytes);
    runner.broadcast_state_from_rank0();
    const int64_t begin = bounds[static_cast<size_t>(rank)], end = bounds[static_cast<size_t>(rank) + 1];
    for (size_t s = 0; s < batches.x.size(); ++s)
      runner.train_step(batches.x[s].slice(0, begin, end), batches.y[s].slice(0, begin, end), adam.lr,
                        static_cast<int64_t>(s) + 1, 0);
    out[static_cast<size_t>(rank)] = as_values(runner.model_tensors());
  });
  return out;
}

TEST(SyncBatchNorm, TwoRanksOfUnequalRowsTrainAsOneProcessWithTheirWholeBatch) {
  std::mt19937_64 rng(std::random_device{}());
  const nn::Model model = conv_batch_norm_model();
  const Batches batches = make_batches(5, 16, {3, 6, 6}, rng);
  optim::OptimizerConfig adam;
  adam.lr = 1e-2;
  ModelRunner one(model, adam, ref_plan(), /*seed*/ 7);
  for (size_t s = 0; s < batches.x.size(); ++s)
    one.train_step(batches.x[s], batches.y[s], adam.lr, static_cast<int64_t>(s) + 1, 0);
  const auto whole = as_values(one.model_tensors());

  const std::vector<int64_t> bounds{0, 6, 16};
  const auto synced = train_two_ranks(model, batches, bounds, true);
  // The ranks agree bit for bit: one all-reduced gradient, statistics summed in rank order.
  EXPECT_EQ(max_difference(synced[0], synced[1]), 0.0);
  // f32 weights after 5 Adam steps of lr 1e-2: the ref kernels accumulate in float64 and round
  // each op's result to f32, so the two runs differ by a few f32 roundings per op, which Adam's
  // division by sqrt(v) can amplify where a gradient is small. Measured: 1.2e-7 at most (3 runs).
  const double difference = max_difference(synced[0], whole);
  EXPECT_LT(difference, 2e-6);
  EXPECT_EQ(whole.at("1.num_batches_tracked"), std::vector<double>{5});
  RecordProperty("max_difference", fmt::format("{:.3g}", difference));

  // A bucket per parameter beside the graph's all_reduce_sums: the buckets wait for the gradient
  // graph's run to end (no two threads on the communicator, one order on both ranks), and the
  // result is the same bits as one bucket's (the same sums, each column added once).
  const auto bucketed = train_two_ranks(model, batches, bounds, true, /*bucket_bytes*/ 1);
  EXPECT_EQ(max_difference(bucketed[0], bucketed[1]), 0.0);
  EXPECT_EQ(max_difference(bucketed[0], synced[0]), 0.0);

  // The control: local statistics (DDP's default) train to other weights and statistics.
  const auto local = train_two_ranks(model, batches, bounds, false);
  EXPECT_GT(max_difference(local[0], whole), 1e-4);
}

TEST(SyncBatchNorm, WithoutItEveryRankTakesRank0sRunningStatisticsAfterEachStep) {
  std::mt19937_64 rng(std::random_device{}());
  // BatchNorm1d first: its running mean depends on the data alone, so rank 0's is known.
  const nn::Model model = nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [4], "layers": [
      {"type": "BatchNorm1d", "num_features": 4}, {"type": "Linear", "in_features": 4, "out_features": 3}]})"));
  const Batches batches = make_batches(4, 12, {4}, rng);
  const std::vector<int64_t> bounds{0, 5, 12};
  const auto ranks = train_two_ranks(model, batches, bounds, false);
  EXPECT_EQ(max_difference(ranks[0], ranks[1]), 0.0);  // rank 1 holds rank 0's buffers, and the same weights

  // running_mean = 0.9 running_mean + 0.1 mean, over rank 0's rows [0, 5) of each batch.
  std::vector<double> rank0(4, 0.0), rank1(4, 0.0);
  for (const Tensor& x : batches.x) {
    std::vector<double> v = x.to_doubles();  // (12, 4)
    for (int64_t c = 0; c < 4; ++c) {
      double s0 = 0, s1 = 0;
      for (int64_t row = 0; row < 12; ++row) (row < 5 ? s0 : s1) += v[static_cast<size_t>(row * 4 + c)];
      rank0[c] = 0.9 * rank0[c] + 0.1 * s0 / 5;
      rank1[c] = 0.9 * rank1[c] + 0.1 * s1 / 7;
    }
  }
  EXPECT_LT(max_abs_difference(ranks[1].at("0.running_mean"), rank0), 1e-6);
  EXPECT_GT(max_abs_difference(ranks[1].at("0.running_mean"), rank1), 1e-3);  // not rank 1's own
  EXPECT_EQ(ranks[1].at("0.num_batches_tracked"), std::vector<double>{4});
}

}  // namespace
}  // namespace gpuml
