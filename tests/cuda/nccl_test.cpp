// NCCL with one rank on the GPU (label cuda; the GPU check's nccl stage): it initialises, its
// collectives give the one-rank results on device memory (no copy) and on host memory (staged), and
// a data-parallel step whose gradients go through it trains as the fused single-process step does.
// SKIPPED without a GPU. With a GPU and no NCCL (libnccl.so.2 missing, a plugin built without
// nccl.h) it FAILS with the reason: the GPU check must see that.
//
// Several ranks cannot be checked on one GPU: NCCL refuses two ranks on the same device.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

#include "backend/communicator.h"
#include "backend/dispatch.h"
#include "cuda_test_support.h"
#include "train/model_runner.h"

namespace gpuml {
namespace {

std::shared_ptr<Communicator> open_nccl(Backend& gpu) {
  return open_device_communicator(gpu, nullptr, std::chrono::seconds(60));
}

Tensor random_on(Backend& b, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = std::normal_distribution<double>()(rng);
  return to_backend(Tensor::from_values({n}, v, DType::f32), b);
}

std::vector<double> host_values(const Tensor& t) { return to_backend(t, backend_registry().reference()).to_doubles(); }

TEST(NcclOneRank, InitialisesOnThisGpu) {
  GPUML_NEED_GPU(gpu);
  std::shared_ptr<Communicator> nccl = open_nccl(*gpu);
  EXPECT_EQ(nccl->name(), "nccl");
  EXPECT_EQ(nccl->rank(), 0);
  EXPECT_EQ(nccl->world_size(), 1);
  EXPECT_EQ(nccl->memory_device(), gpu->device());
  EXPECT_NE(nccl->description().find("NCCL 2."), std::string::npos) << nccl->description();
  nccl->barrier({"nothing", std::chrono::seconds(30)});
}

// Odd sizes and one large enough for several NCCL chunks; fresh random values each run.
TEST(NcclOneRank, CollectivesOnDeviceMemoryGiveTheOneRankResult) {
  GPUML_NEED_GPU(gpu);
  std::shared_ptr<Communicator> nccl = open_nccl(*gpu);
  const uint64_t seed = std::random_device{}();
  const CollectiveCall call{"test values", std::chrono::seconds(30)};
  for (int64_t n : {int64_t{1}, int64_t{1001}, int64_t{1} << 22}) {
    SCOPED_TRACE(n);
    Tensor values = random_on(*gpu, n, seed + static_cast<uint64_t>(n));
    const std::vector<double> before = host_values(values);
    float* device = static_cast<float*>(values.raw_data());
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::average, ReduceOp::max}) {
      nccl->all_reduce({device, static_cast<size_t>(n)}, op, call);
      ASSERT_EQ(host_values(values), before);
    }
    nccl->broadcast({reinterpret_cast<std::byte*>(device), static_cast<size_t>(n) * 4}, 0, call);
    ASSERT_EQ(host_values(values), before);
    Tensor gathered = Tensor::empty({n}, DType::f32, *gpu);
    nccl->all_gather({reinterpret_cast<const std::byte*>(device), static_cast<size_t>(n) * 4},
                     {static_cast<std::byte*>(gathered.raw_data()), static_cast<size_t>(n) * 4}, call);
    EXPECT_EQ(host_values(gathered), before);
    Tensor block = Tensor::empty({n}, DType::f32, *gpu);
    nccl->reduce_scatter({device, static_cast<size_t>(n)}, {static_cast<float*>(block.raw_data()), static_cast<size_t>(n)},
                         ReduceOp::sum, call);
    EXPECT_EQ(host_values(block), before);
  }
}

TEST(NcclOneRank, CollectivesOnHostMemoryAreStaged) {
  GPUML_NEED_GPU(gpu);
  std::shared_ptr<Communicator> nccl = open_nccl(*gpu);
  std::mt19937 rng(std::random_device{}());
  std::vector<float> values(4097);
  for (float& v : values) v = std::normal_distribution<float>()(rng);
  const std::vector<float> before = values;
  const CollectiveCall call{"host values", std::chrono::seconds(30)};
  nccl->all_reduce(values, ReduceOp::average, call);
  EXPECT_EQ(values, before);
  std::vector<float> mine(values.size());
  nccl->reduce_scatter(values, mine, ReduceOp::max, call);
  EXPECT_EQ(mine, before);
  std::vector<std::byte> bytes(13), all(13);
  for (std::byte& b : bytes) b = static_cast<std::byte>(rng());
  nccl->all_gather(bytes, all, call);
  EXPECT_EQ(all, bytes);
}

// SGD, not Adam: Adam's update hardly moves when the gradient is scaled, so a gradient summed but
// not divided by the weight would pass unseen. Batches of 12 rows (not a power of two): the
// weighting and the division each round once, hence the tolerance.
TEST(NcclOneRank, DataParallelStepTrainsAsTheFusedStep) {
  GPUML_NEED_GPU(gpu);
  std::shared_ptr<Communicator> nccl = open_nccl(*gpu);
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  nn::Model model = nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [20], "layers": [
      {"type": "Linear", "in_features": 20, "out_features": 64}, {"type": "ReLU"},
      {"type": "Linear", "in_features": 64, "out_features": 5}]})"));
  optim::OptimizerConfig sgd;
  sgd.kind = "sgd";
  PlanOptions plan;
  plan.backends = {gpu, &backend_registry().get("cpu")};
  plan.deterministic = true;
  ModelRunner fused(model, sgd, plan, seed), through_nccl(model, sgd, plan, seed);
  through_nccl.set_communicator(nullptr, std::chrono::seconds(30), nccl);
  for (int step = 1; step <= 6; ++step) {
    SCOPED_TRACE(step);
    std::vector<double> xv(12 * 20), yv(12);
    for (double& v : xv) v = std::normal_distribution<double>()(rng);
    for (double& v : yv) v = static_cast<double>(rng() % 5);
    Tensor x = Tensor::from_values({12, 20}, xv, DType::f32), y = Tensor::from_values({12}, yv, DType::i64);
    StepStats a = fused.train_step(x, y, 0.1, step, step), b = through_nccl.train_step(x, y, 0.1, step, step);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::max(1.0, std::abs(a.loss)));
    EXPECT_EQ(b.rows, 12);
    EXPECT_EQ(b.weight, 12.0);
    const std::vector<double> wa = fused.state_snapshot().to_doubles(), wb = through_nccl.state_snapshot().to_doubles();
    ASSERT_EQ(wa.size(), wb.size());
    double worst = 0;
    for (size_t i = 0; i < wa.size(); ++i) worst = std::max(worst, std::abs(wa[i] - wb[i]) / std::max(1.0, std::abs(wa[i])));
    ASSERT_LE(worst, 1e-5);
  }
}

}  // namespace
}  // namespace gpuml
