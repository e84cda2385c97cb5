// Data parallelism without a launcher: who-am-I from environment maps (Open MPI, Slurm, torchrun,
// in that order, and refusals naming the variable), the loader's batch parts (N parts of a global
// batch are exactly one process's batch), the one-process communicator, the checks every engine
// shares, the choice of the engine that carries gradients, and the step through one. The collectives
// themselves run under mpirun in tests/dist.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "backend/process_env.h"
#include "core/error.h"
#include "data/loader.h"
#include "train/data_parallel.h"
#include "train/model_runner.h"

namespace gpuml {
namespace {

TEST(ProcessPlacement, NoLauncherIsOneProcess) {
  ProcessPlacement p = detect_process_placement({{"HOME", "/root"}});
  EXPECT_EQ(p.launcher, "none");
  EXPECT_EQ(p.rank, 0);
  EXPECT_EQ(p.world_size, 1);
  EXPECT_FALSE(p.distributed());
  EXPECT_NE(describe_placement(p).find("one process"), std::string::npos);
}

TEST(ProcessPlacement, ReadsOpenMpi) {
  ProcessPlacement p = detect_process_placement(
      {{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(p.launcher, "open-mpi");
  EXPECT_EQ(p.rank, 3);
  EXPECT_EQ(p.world_size, 4);
  EXPECT_EQ(p.local_rank, 1);
  EXPECT_TRUE(p.distributed());
  EXPECT_EQ(describe_placement(p), "rank 3 of 4, local rank 1 (Open MPI: OMPI_COMM_WORLD_*)");
}

TEST(ProcessPlacement, ReadsSlurm) {
  ProcessPlacement p =
      detect_process_placement({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(p.launcher, "slurm");
  EXPECT_EQ(p.rank, 5);
  EXPECT_EQ(p.world_size, 8);
  EXPECT_EQ(p.local_rank, 1);
}

TEST(ProcessPlacement, ReadsTorchrunWithRendezvous) {
  ProcessPlacement p = detect_process_placement({{"RANK", "1"},
                                                 {"WORLD_SIZE", "2"},
                                                 {"LOCAL_RANK", "0"},
                                                 {"MASTER_ADDR", "10.1.2.3"},
                                                 {"MASTER_PORT", "29500"}});
  EXPECT_EQ(p.launcher, "torchrun");
  EXPECT_EQ(p.rank, 1);
  EXPECT_EQ(p.world_size, 2);
  EXPECT_EQ(p.master_addr, "10.1.2.3");
  EXPECT_EQ(p.master_port, 29500);
  EXPECT_NE(describe_placement(p).find("rendezvous 10.1.2.3:29500"), std::string::npos);
}

// mpirun inside a Slurm allocation: the job's SLURM_* describe the allocation, OMPI_* the ranks.
TEST(ProcessPlacement, OpenMpiWinsOverSlurmAndSlurmOverTorchrun) {
  ProcessPlacement p = detect_process_placement({{"SLURM_PROCID", "0"},
                                                 {"SLURM_NTASKS", "1"},
                                                 {"OMPI_COMM_WORLD_RANK", "1"},
                                                 {"OMPI_COMM_WORLD_SIZE", "2"},
                                                 {"RANK", "0"},
                                                 {"WORLD_SIZE", "1"}});
  EXPECT_EQ(p.launcher, "open-mpi");
  EXPECT_EQ(p.rank, 1);
  p = detect_process_placement({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}, {"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(p.launcher, "slurm");
  EXPECT_EQ(p.rank, 2);
  EXPECT_EQ(p.local_rank, 0);  // SLURM_LOCALID absent: one process per machine
}

void expect_refused(const Environment& env, const std::string& naming) {
  try {
    detect_process_placement(env);
    ADD_FAILURE() << "accepted, expected an error naming " << naming;
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(naming), std::string::npos) << e.message();
  }
}

TEST(ProcessPlacement, RefusesHalfSetOrBadVariablesNamingThem) {
  expect_refused({{"OMPI_COMM_WORLD_RANK", "1"}}, "OMPI_COMM_WORLD_SIZE");
  expect_refused({{"WORLD_SIZE", "2"}}, "RANK");
  expect_refused({{"SLURM_PROCID", "x"}, {"SLURM_NTASKS", "2"}}, "SLURM_PROCID='x'");
  expect_refused({{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "RANK=2 is not a rank of WORLD_SIZE=2");
  expect_refused({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE=0");
  expect_refused({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}, "MASTER_PORT=70000");
}

TEST(Communicator, OneProcessReturnsItsInput) {
  std::unique_ptr<Communicator> comm = make_single_process_communicator();
  EXPECT_EQ(comm->world_size(), 1);
  std::vector<float> v{1.5f, -2.0f};
  comm->all_reduce(v, ReduceOp::average, {"values"});
  EXPECT_EQ(v, (std::vector<float>{1.5f, -2.0f}));
  std::vector<std::byte> mine{std::byte{7}}, all(1);
  comm->all_gather(mine, all, {"a byte"});
  EXPECT_EQ(all[0], std::byte{7});
  comm->barrier({"nothing"});
  check_ranks_agree(*comm, {{"batch_size", 1}}, {}, std::chrono::seconds(1));  // nothing to compare
  EXPECT_EQ(open_communicator(ProcessPlacement{})->name(), "single");
}

TEST(Communicator, EachLauncherPicksItsEngine) {
  EXPECT_EQ(choose_communicator(ProcessPlacement{}).engine, "single");
  EXPECT_EQ(choose_communicator(detect_process_placement({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}}))
                .plugin_file,
            "libgpuml_mpi.so");
  EXPECT_EQ(choose_communicator(detect_process_placement({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}})).engine, "mpi");
  const CommunicatorChoice torchrun = choose_communicator(detect_process_placement({{"RANK", "0"}, {"WORLD_SIZE", "2"}}));
  EXPECT_EQ(torchrun.engine, "gloo");
  EXPECT_EQ(torchrun.plugin_file, "libgpuml_gloo.so");
}

TEST(Communicator, TorchrunWithoutARendezvousAddressIsRefused) {
  ProcessPlacement p = detect_process_placement({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
  try {
    open_communicator(p, std::chrono::seconds(1));
    ADD_FAILURE() << "torchrun variables without MASTER_ADDR opened a communicator";
  } catch (const Error& e) {
    // With the plugin built, the plugin names the missing variables; without it, the loader names the plugin.
    EXPECT_TRUE(e.message().find("MASTER_ADDR and MASTER_PORT") != std::string::npos ||
                e.message().find("libgpuml_gloo.so") != std::string::npos)
        << e.message();
  }
}

TEST(Communicator, OneProcessReduceScatterIsItsInput) {
  std::unique_ptr<Communicator> comm = make_single_process_communicator();
  std::vector<float> all{1.5f, -2.0f}, mine(2);
  comm->reduce_scatter(all, mine, ReduceOp::sum, {"values"});
  EXPECT_EQ(mine, all);
}

TEST(Communicator, FailureMessageNamesRankCollectiveAndPeer) {
  std::string m = collective_failure_message(1, 2, "broadcast", {"weights", std::chrono::seconds(3)}, 0.2,
                                             "Gloo: Connection closed by peer");
  EXPECT_NE(m.find("rank 1 of 2: broadcast of weights failed after 0.2 s"), std::string::npos) << m;
  EXPECT_NE(m.find("rank 0"), std::string::npos) << m;
}

TEST(Communicator, TimeoutMessageNamesRankCollectiveAndPeer) {
  std::string m = collective_timeout_message(0, 2, "all_reduce", {"gradients", std::chrono::seconds(3)}, 3.01);
  EXPECT_NE(m.find("rank 0 of 2: all_reduce of gradients waited 3.0 s"), std::string::npos) << m;
  EXPECT_NE(m.find("for rank 1"), std::string::npos) << m;
}

// A communicator of `ranks` ranks that records what reached its engine: the checks, the skipping
// of empty buffers and the average's scale are Communicator's, once for every engine.
class RecordingCommunicator : public Communicator {
 public:
  explicit RecordingCommunicator(int ranks) : ranks_(ranks) {}
  std::string_view name() const override { return "recording"; }
  int rank() const override { return 0; }
  int world_size() const override { return ranks_; }
  std::string description() const override { return "records"; }
  std::vector<std::string> calls;

 protected:
  // Every rank holds the same values: the sum is ranks x values, the max the values.
  void do_all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall&) override {
    calls.push_back(op == ReduceOp::sum ? "all_reduce sum" : op == ReduceOp::max ? "all_reduce max" : "average!");
    if (op == ReduceOp::sum)
      for (float& v : values) v *= static_cast<float>(ranks_);
  }
  void do_broadcast(std::span<std::byte>, int root, const CollectiveCall&) override {
    calls.push_back("broadcast from " + std::to_string(root));
  }
  void do_all_gather(std::span<const std::byte>, std::span<std::byte>, const CollectiveCall&) override {
    calls.push_back("all_gather");
  }
  void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                         const CollectiveCall&) override {
    calls.push_back(op == ReduceOp::sum ? "reduce_scatter sum" : op == ReduceOp::max ? "reduce_scatter max" : "average!");
    for (size_t i = 0; i < mine.size(); ++i) mine[i] = all[i] * (op == ReduceOp::sum ? static_cast<float>(ranks_) : 1.0f);
  }
  void do_barrier(const CollectiveCall&) override { calls.push_back("barrier"); }

 private:
  int ranks_;
};

TEST(Communicator, AverageIsTheEnginesSumScaledOnce) {
  RecordingCommunicator comm(4);
  std::vector<float> v{2.0f, -6.0f};
  comm.all_reduce(v, ReduceOp::average, {"values"});
  EXPECT_EQ(v, (std::vector<float>{2.0f, -6.0f}));  // (4 x v) / 4
  comm.all_reduce(v, ReduceOp::max, {"values"});
  EXPECT_EQ(v, (std::vector<float>{2.0f, -6.0f}));
  std::vector<float> all(8, 1.5f), mine(2);
  comm.reduce_scatter(all, mine, ReduceOp::average, {"values"});
  EXPECT_EQ(mine, (std::vector<float>{1.5f, 1.5f}));
  EXPECT_EQ(comm.calls, (std::vector<std::string>{"all_reduce sum", "all_reduce max", "reduce_scatter sum"}));
}

TEST(Communicator, SizesAndRootAreCheckedBeforeTheEngine) {
  RecordingCommunicator comm(3);
  auto expect_refused = [](auto&& call, const std::string& naming) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected an error naming: " << naming;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(naming), std::string::npos) << e.message();
    }
  };
  std::vector<std::byte> mine(4), all(8);
  expect_refused([&] { comm.all_gather(mine, all, {"weights"}); }, "all_gather of weights: 8 bytes for 3 rank(s) of 4");
  std::vector<float> whole(5), block(2);
  expect_refused([&] { comm.reduce_scatter(whole, block, ReduceOp::sum, {"state"}); },
                 "reduce_scatter of state: 5 values for 3 rank(s) of 2");
  std::vector<std::byte> bytes(3);
  expect_refused([&] { comm.broadcast(bytes, 3, {"weights"}); }, "broadcast of weights from rank 3: there are 3 ranks (0..2)");
  expect_refused([&] { comm.broadcast(bytes, -1, {"weights"}); }, "from rank -1");
  EXPECT_TRUE(comm.calls.empty());
  comm.broadcast(bytes, 2, {"weights"});
  std::vector<std::byte> all_right(12);
  comm.all_gather(mine, all_right, {"weights"});
  comm.barrier({"nothing"});
  EXPECT_EQ(comm.calls, (std::vector<std::string>{"broadcast from 2", "all_gather", "barrier"}));
  // One process: rank 0 only.
  expect_refused([] { make_single_process_communicator()->broadcast({}, 1, {"weights"}); },
                 "there is 1 rank (0..0)");
}

// Empty buffers are the same length on every rank, so every rank skips them alike.
TEST(Communicator, EmptyBuffersNeverReachTheEngine) {
  RecordingCommunicator comm(2);
  comm.all_reduce({}, ReduceOp::average, {"nothing"});
  comm.broadcast({}, 1, {"nothing"});
  comm.all_gather({}, {}, {"nothing"});
  comm.reduce_scatter({}, {}, ReduceOp::sum, {"nothing"});
  EXPECT_TRUE(comm.calls.empty());
  EXPECT_EQ(comm.memory_device(), (Device{DeviceType::cpu, 0}));
}

TEST(GradientEngine, NcclCarriesTheGradientsOfSeveralGpuRanks) {
  EXPECT_EQ(choose_gradient_engine("auto", /*trains_on_gpu*/ true, 2).engine, "nccl");
  EXPECT_EQ(choose_gradient_engine("auto", true, 1).engine, "host");   // one process: nothing to share
  EXPECT_EQ(choose_gradient_engine("auto", false, 4).engine, "host");  // CPU ranks: MPI or Gloo
  EXPECT_EQ(choose_gradient_engine("host", true, 8).engine, "host");
  EXPECT_EQ(choose_gradient_engine("nccl", true, 1).engine, "nccl");   // the GPU check's one rank
  try {
    choose_gradient_engine("nccl", false, 2);
    ADD_FAILURE() << "GPUML_COMM=nccl accepted for a run on the host";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(e.message().find("GPUML_COMM=nccl"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("--device cuda"), std::string::npos) << e.message();
  }
}

TEST(GradientEngine, GpumlCommIsReadAndCheckedByName) {
  EXPECT_EQ(gradient_engine_request({}), "auto");
  EXPECT_EQ(gradient_engine_request({{"GPUML_COMM", ""}}), "auto");
  EXPECT_EQ(gradient_engine_request({{"GPUML_COMM", "auto"}}), "auto");
  EXPECT_EQ(gradient_engine_request({{"GPUML_COMM", "nccl"}}), "nccl");
  EXPECT_EQ(gradient_engine_request({{"GPUML_COMM", "host"}}), "host");
  for (const char* bad : {"NCCL", "gloo", "mpi", "nccl "}) {
    try {
      gradient_engine_request({{"GPUML_COMM", bad}});
      ADD_FAILURE() << "GPUML_COMM=" << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(std::string("GPUML_COMM=") + bad + ": it takes auto"), std::string::npos)
          << e.message();
    }
  }
}

TEST(GradientEngine, NcclOnAHostBackendIsRefused) {
  try {
    open_device_communicator(backend_registry().get("cpu"), nullptr, std::chrono::seconds(1));
    ADD_FAILURE() << "NCCL opened on the cpu backend";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(e.message().find("NCCL works on GPU memory; cpu is a host backend"), std::string::npos) << e.message();
  }
}

// The step a device engine (NCCL) carries, run here with an engine whose memory is the host's (the
// model's home here): the gradient weighted, reduced in the engine's memory with the loss sums, and
// divided there. The recording engine acts as two ranks holding the same batch, so the global
// batch is twice this one and its mean gradient is this one's: SGD (whose step shows a gradient's
// scale, as Adam's does not) must land where the fused one-process step does, and the sums must
// count both ranks.
TEST(GradientEngine, StepThroughAGradientEngineTrainsAsTheFusedStep) {
  nn::Model model = nn::Model::from_json(nlohmann::json::parse(R"({"input_shape": [7], "layers": [
      {"type": "Linear", "in_features": 7, "out_features": 16}, {"type": "ReLU"},
      {"type": "Linear", "in_features": 16, "out_features": 3}]})"));
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  optim::OptimizerConfig sgd;
  sgd.kind = "sgd";
  ModelRunner fused(model, sgd, {}, seed), through_engine(model, sgd, {}, seed);
  auto engine = std::make_shared<RecordingCommunicator>(2);
  through_engine.set_communicator(nullptr, std::chrono::seconds(5), engine);
  for (int step = 1; step <= 4; ++step) {
    SCOPED_TRACE(step);
    std::vector<double> xv(12 * 7), yv(12);
    for (double& v : xv) v = std::normal_distribution<double>()(rng);
    for (double& v : yv) v = static_cast<double>(rng() % 3);
    Tensor x = Tensor::from_values({12, 7}, xv, DType::f32), y = Tensor::from_values({12}, yv, DType::i64);
    StepStats a = fused.train_step(x, y, 0.1, step, 0), b = through_engine.train_step(x, y, 0.1, step, 0);
    EXPECT_NEAR(a.loss, b.loss, 1e-6 * std::max(1.0, std::abs(a.loss)));
    EXPECT_EQ(b.rows, 24);
    EXPECT_EQ(b.weight, 24.0);
    const std::vector<double> wa = fused.state_snapshot().to_doubles(), wb = through_engine.state_snapshot().to_doubles();
    ASSERT_EQ(wa.size(), wb.size());
    for (size_t i = 0; i < wa.size(); ++i) ASSERT_NEAR(wa[i], wb[i], 1e-6 * std::max(1.0, std::abs(wa[i]))) << i;
  }
  EXPECT_EQ(engine->calls.size(), 4u);  // one all-reduce per step: the gradient and the sums together
  // An engine on other memory than the model's is refused.
  struct OnAGpu : RecordingCommunicator {
    OnAGpu() : RecordingCommunicator(1) {}
    Device memory_device() const override { return {DeviceType::cuda, 0}; }
  };
  try {
    fused.set_communicator(nullptr, std::chrono::seconds(5), std::make_shared<OnAGpu>());
    ADD_FAILURE() << "a communicator on cuda:0 accepted for a model on the host";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("the recording communicator works on cuda:0 memory, the model on cpu"),
              std::string::npos)
        << e.message();
  }
}

std::vector<double> labels_of_batch(const data::Batch& b) { return b.y.to_doubles(); }

// Parts of every global batch, concatenated in rank order, are exactly the one-process batch:
// rows, features and order, for full and partial batches alike.
TEST(DataLoaderParts, PartsOfAGlobalBatchAreTheOneProcessBatch) {
  std::mt19937 rng(std::random_device{}());
  const int64_t n = 53;
  Tensor x = Tensor::empty({n, 3}, DType::u8);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
  Tensor y = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = i;
  data::InMemoryDataset dataset(x, y);
  for (int parts : {2, 3}) {
    data::DataLoaderOptions whole;
    whole.batch_size = 8 * parts;
    whole.seed = 11;
    whole.prefetch_depth = 0;
    data::DataLoader one(dataset, whole);
    std::vector<std::unique_ptr<data::DataLoader>> ranks;
    for (int r = 0; r < parts; ++r) {
      data::DataLoaderOptions o = whole;
      o.part = r;
      o.parts = parts;
      ranks.push_back(std::make_unique<data::DataLoader>(dataset, o));
      EXPECT_EQ(ranks.back()->batches_per_epoch(), one.batches_per_epoch());
    }
    for (int64_t b = 0; b < one.batches_per_epoch(); ++b) {
      data::Batch full = one.make_batch(1, b);
      std::vector<double> joined, features;
      for (const auto& loader : ranks) {
        data::Batch part = loader->make_batch(1, b);
        EXPECT_GE(part.y.dim(0), full.y.dim(0) / parts);
        for (double v : labels_of_batch(part)) joined.push_back(v);
        for (double v : part.x.to_doubles()) features.push_back(v);
      }
      EXPECT_EQ(joined, labels_of_batch(full)) << parts << " parts, batch " << b;
      EXPECT_EQ(features, full.x.to_doubles()) << parts << " parts, batch " << b;
    }
  }
}

TEST(DataLoaderParts, DropsALastBatchTooSmallToSplit) {
  Tensor x = Tensor::empty({17, 1}, DType::u8);
  Tensor y = Tensor::empty({17}, DType::i64);
  for (int64_t i = 0; i < 17; ++i) x.data<uint8_t>()[i] = 0, y.data<int64_t>()[i] = i;
  data::DataLoaderOptions o;
  o.batch_size = 8;
  o.parts = 2;
  EXPECT_EQ(data::DataLoader(data::InMemoryDataset(x, y), o).batches_per_epoch(), 2);  // 17 = 8 + 8 + 1
  o.parts = 1;
  EXPECT_EQ(data::DataLoader(data::InMemoryDataset(x, y), o).batches_per_epoch(), 3);
  o.parts = 3;
  o.part = 3;
  EXPECT_THROW(data::DataLoader(data::InMemoryDataset(x, y), o), Error);
}

}  // namespace
}  // namespace gpuml
