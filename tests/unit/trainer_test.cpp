// The Trainer as a library: no process-wide state (two trainers at once on two threads, with
// different thread counts and data memory limits, end with the weights each gets alone), a
// thread count scoped to the caller, callbacks called in order, and request_stop.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "data/pack.h"
#include "io_temp_dir.h"
#include "train/callbacks.h"
#include "train/trainer.h"
#include "blobs_dataset.h"

namespace gpuml {
namespace {

using testing::TempDir;

using testing::blobs;

nn::Model model_from(const std::string& json) { return nn::Model::from_json(nlohmann::json::parse(json)); }

const char* kMlp = R"({"input_shape": [20], "layers": [{"type": "Linear", "in_features": 20, "out_features": 32},
  {"type": "ReLU"}, {"type": "Linear", "in_features": 32, "out_features": 4}]})";
const char* kImageMlp = R"({"input_shape": [1, 8, 8], "layers": [{"type": "Flatten"},
  {"type": "Linear", "in_features": 64, "out_features": 24}, {"type": "ReLU"},
  {"type": "Linear", "in_features": 24, "out_features": 10}]})";

std::vector<uint8_t> bytes_of(const NamedTensors& weights) {
  std::vector<uint8_t> out;
  for (const auto& [name, t] : weights) {
    const auto* p = static_cast<const uint8_t*>(t.raw_data());
    out.insert(out.end(), p, p + t.nbytes());
  }
  return out;
}

struct Job {
  TrainConfig cfg;
  bool arrays = false;
  std::string model;
};

// The OpenMP thread counts the steps ran with.
struct ThreadsSeen : Callback {
  std::set<int> counts;
  void on_step_end(TrainState&) override { counts.insert(omp_get_max_threads()); }
};

// Trains `job` to the end; the final weights' bytes. Checks that every step ran with the job's
// own thread count.
std::vector<uint8_t> run(const Job& job) {
  TrainerInputs in;
  in.model = model_from(job.model);
  if (job.arrays) in.train = blobs(512, 7), in.eval = blobs(128, 8);
  Trainer trainer(job.cfg, std::move(in));
  auto seen = std::make_shared<ThreadsSeen>();
  trainer.add_callback(seen);
  trainer.fit();
  EXPECT_EQ(seen->counts, std::set<int>{job.cfg.threads});
  return bytes_of(trainer.weights());
}

TEST(Trainer, TwoTrainersAtOnceOnTwoThreadsGiveTheWeightsEachGetsAlone) {
  TempDir dir;
  data::PackOptions pack;
  pack.seed = 3;
  data::pack_dataset("synthetic:600:1x8x8", dir.path() / "shards", pack);

  Job a{.cfg = {}, .arrays = true, .model = kMlp};
  a.cfg.threads = 1;
  a.cfg.epochs = 2;
  a.cfg.batch_size = 32;
  a.cfg.seed = 1;
  a.cfg.device = "cpu";
  a.cfg.deterministic = true;
  Job b{.cfg = a.cfg, .arrays = false, .model = kImageMlp};
  b.cfg.data = (dir.path() / "shards").string();
  b.cfg.threads = 2;
  b.cfg.epochs = 1;
  b.cfg.batch_size = 50;
  b.cfg.seed = 2;
  b.cfg.data_memory_limit = 4 << 20;  // streams through a small shuffle buffer
  b.cfg.optimizer.kind = "sgd";

  const std::vector<uint8_t> alone_a = run(a), alone_b = run(b);
  std::vector<uint8_t> together_a, together_b;
  std::exception_ptr error_a, error_b;
  std::thread ta([&] {
    try {
      together_a = run(a);
    } catch (...) {
      error_a = std::current_exception();
    }
  });
  std::thread tb([&] {
    try {
      together_b = run(b);
    } catch (...) {
      error_b = std::current_exception();
    }
  });
  ta.join();
  tb.join();
  if (error_a) std::rethrow_exception(error_a);
  if (error_b) std::rethrow_exception(error_b);
  ASSERT_FALSE(alone_a.empty());
  EXPECT_TRUE(together_a == alone_a) << "trainer A's weights changed when B ran beside it";
  EXPECT_TRUE(together_b == alone_b) << "trainer B's weights changed when A ran beside it";
  EXPECT_FALSE(alone_a == together_b);
}

TEST(Trainer, ThreadCountIsTheCallersAndRestored) {
  omp_set_num_threads(3);
  TrainConfig cfg;
  cfg.threads = 1;
  cfg.epochs = 1;
  cfg.device = "cpu";
  TrainerInputs in{.model = model_from(kMlp), .train = blobs(64, 1), .eval = std::nullopt};
  Trainer trainer(cfg, std::move(in));
  EXPECT_EQ(omp_get_max_threads(), 3);
  trainer.fit();
  EXPECT_EQ(omp_get_max_threads(), 3);
}

// Records the hooks in order; stops the run at its third step.
struct Recorder : Callback {
  std::vector<std::string> calls;
  void on_train_begin(TrainState&) override { calls.push_back("train_begin"); }
  void on_epoch_begin(TrainState& s) override { calls.push_back(fmt::format("epoch_begin {}", s.epoch)); }
  void on_step_end(TrainState& s) override {
    calls.push_back(fmt::format("step {}", s.progress.step));
    if (s.progress.step == 3) s.stop_requested = true;
  }
  void on_epoch_stopped(TrainState&) override { calls.push_back("epoch_stopped"); }
  void on_epoch_end(TrainState& s) override { calls.push_back(fmt::format("epoch_end {}", s.epoch_summary.epoch)); }
  void on_train_end(TrainState&) override { calls.push_back("train_end"); }
};

TEST(Trainer, CallsCallbacksInOrderAndStopsWhenOneAsks) {
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch_size = 16;  // 64 rows: 4 steps an epoch
  cfg.device = "cpu";
  TrainerInputs in{.model = model_from(kMlp), .train = blobs(64, 1), .eval = std::nullopt};
  Trainer trainer(cfg, std::move(in));
  auto recorder = std::make_shared<Recorder>();
  trainer.add_callback(recorder);
  TrainResult r = trainer.fit();
  const std::vector<std::string> want = {"train_begin", "epoch_begin 0", "step 1", "step 2", "step 3",
                                         "epoch_stopped", "train_end"};
  EXPECT_EQ(recorder->calls, want);
  EXPECT_TRUE(r.stop_requested);
  EXPECT_EQ(r.epochs_run, 0);
  EXPECT_FALSE(std::filesystem::exists(trainer.run_dir())) << "no callback writes files, so nothing is written";
}

TEST(Trainer, EvaluatesAndPredictsArraysLikeItsTrainingData) {
  TrainConfig cfg;
  cfg.epochs = 4;
  cfg.device = "cpu";
  cfg.optimizer.lr = 0.01;
  TrainerInputs in{.model = model_from(kMlp), .train = blobs(512, 7), .eval = blobs(128, 8)};
  Trainer trainer(cfg, std::move(in));
  TrainResult r = trainer.fit();
  data::InMemoryDataset test = blobs(128, 8);
  TaskSums e = trainer.evaluate(test);
  EXPECT_EQ(e.rows, 128);
  EXPECT_DOUBLE_EQ(e.score / e.weight, r.eval_metric);
  EXPECT_GT(r.eval_metric, 0.6) << "4 separable blobs: an MLP learns them";
  Tensor p = trainer.predict(test.features());
  ASSERT_EQ(p.shape(), (Shape{128, 4}));
  int64_t agree = 0;
  for (int64_t i = 0; i < 128; ++i) {
    const float* row = p.data<float>() + i * 4;
    agree += std::max_element(row, row + 4) - row == test.labels().data<int64_t>()[i];
  }
  EXPECT_EQ(agree, e.score);
}

}  // namespace
}  // namespace gpuml
