// `gpuml data pack|info|verify` and `gpuml train --data SHARDS` through the binary.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "e2e_support.h"
#include "train/checkpoint.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::run_gpuml;
using testing::TempDir;

class ShardE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    testing::write_fashion_subset(dir_.path() / "data", 1000, 200);
  }
  std::string q(const fs::path& p) const { return fmt::format("'{}'", p.string()); }
  fs::path shards() const { return dir_.path() / "shards"; }
  TempDir dir_;
};

TEST_F(ShardE2E, PackInfoVerifyTrainResume) {
  auto p = run_gpuml("data pack " + q(dir_.path() / "data") + " " + q(shards()) + " --shard-size 64K");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("1000 train, 200 test"), std::string::npos) << p.output;
  auto i = run_gpuml("data info " + q(shards()));
  ASSERT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("field x u8 (1, 28, 28)"), std::string::npos) << i.output;
  EXPECT_NE(i.output.find("split train: 1000 records in 13 shards"), std::string::npos) << i.output;
  auto v = run_gpuml("data verify --quiet " + q(shards()));
  ASSERT_EQ(v.exit_code, 0) << v.output;

  fs::path run = dir_.path() / "run";
  auto t = run_gpuml("train --model mlp --epochs 1 --quiet --data " + q(shards()) +
                     " --data-memory-limit 2M --shuffle-buffer 300 --out " + q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  std::ifstream metrics(run / "metrics.csv");
  std::string header, row;
  std::getline(metrics, header);
  std::getline(metrics, row);
  EXPECT_NE(header.find("test_accuracy"), std::string::npos) << header;
  EXPECT_NE(header.find("data_wait_fraction"), std::string::npos);
  // `gpuml eval` on the checkpoint finds the shards it trained on and scores their test split as
  // the trainer did at the end of the epoch.
  auto column = [](const std::string& line, size_t index) {
    std::stringstream ss(line);
    std::string cell;
    for (size_t i = 0; i <= index && std::getline(ss, cell, ','); ++i) {
    }
    return cell;
  };
  size_t acc_index = 0;
  {
    std::stringstream ss(header);
    std::string cell;
    while (std::getline(ss, cell, ',') && cell != "test_accuracy") ++acc_index;
  }
  auto e = run_gpuml("eval --checkpoint " + q(run / "last.safetensors"));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NE(e.output.find("(test split): loss"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find(fmt::format("accuracy {:.4f}", std::stod(column(row, acc_index)))), std::string::npos)
      << e.output << "\nmetrics: " << row;
  auto r = run_gpuml("train --epochs 2 --quiet --resume " + q(run));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("done: 1 epoch,"), std::string::npos) << r.output;  // the one epoch left

  auto small = run_gpuml("train --model mlp --epochs 1 --quiet --data " + q(shards()) +
                         " --data-memory-limit 100K --out " + q(dir_.path() / "r2"));
  EXPECT_EQ(small.exit_code, 1);
  EXPECT_NE(small.output.find("--data-memory-limit 100.0 KiB is too small"), std::string::npos) << small.output;
}

TEST_F(ShardE2E, DamagedShardFailsVerifyAndTraining) {
  ASSERT_EQ(run_gpuml("data pack --quiet " + q(dir_.path() / "data") + " " + q(shards()) + " --shard-size 64K").exit_code, 0);
  {
    std::fstream f(shards() / "train-00003.shard", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  auto v = run_gpuml("data verify --quiet " + q(shards()));
  EXPECT_EQ(v.exit_code, 1) << v.output;
  EXPECT_NE(v.output.find("train-00003.shard: damaged shard: CRC-32C"), std::string::npos) << v.output;
  auto t = run_gpuml("train --model mlp --epochs 1 --quiet --data " + q(shards()) + " --out " + q(dir_.path() / "run"));
  EXPECT_EQ(t.exit_code, 1) << t.output;
  EXPECT_NE(t.output.find("train-00003.shard: damaged shard"), std::string::npos) << t.output;

  // A truncated manifest: a clear error, not a crash.
  fs::resize_file(shards() / "manifest.json", 40);
  auto i = run_gpuml("data info " + q(shards()));
  EXPECT_EQ(i.exit_code, 1);
  EXPECT_NE(i.output.find("manifest.json: not valid JSON (truncated or damaged?)"), std::string::npos) << i.output;
}

// Streaming from shards, stopped mid-epoch by --max-steps and resumed, ends with the same
// weights as an uninterrupted run: the loader replays its shuffle to the saved position.
TEST_F(ShardE2E, MaxStepsThenResumeIsBitExact) {
  ASSERT_EQ(run_gpuml("data pack --quiet " + q(dir_.path() / "data") + " " + q(shards()) + " --shard-size 64K").exit_code, 0);
  const std::string common = "train --model mlp --epochs 2 --batch-size 50 --quiet --data " + q(shards()) +
                             " --data-memory-limit 2M --shuffle-buffer 300 --out ";
  ASSERT_EQ(run_gpuml(common + q(dir_.path() / "straight")).exit_code, 0);
  auto stopped = run_gpuml(common + q(dir_.path() / "split") + " --max-steps 27");  // epoch 2, batch 7
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_NE(stopped.output.find("stopped after --max-steps 27"), std::string::npos) << stopped.output;
  EXPECT_EQ(load_checkpoint(dir_.path() / "split" / "last.safetensors").progress.loader_batch, 7);
  auto resumed = run_gpuml("train --quiet --epochs 2 --resume " + q(dir_.path() / "split"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  Checkpoint a = load_checkpoint(dir_.path() / "straight" / "last.safetensors");
  Checkpoint b = load_checkpoint(dir_.path() / "split" / "last.safetensors");
  EXPECT_EQ(b.progress.step, 40);
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i)
    EXPECT_EQ(a.model[i].second.to_doubles(), b.model[i].second.to_doubles()) << a.model[i].first;
}

// A dataset packed without a test split (a CSV) trains, but `gpuml eval` has nothing to score it
// on: it says so, naming the splits there are, and exits non-zero.
TEST(ShardEval, NoTestSplitIsRefusedNamingTheSplits) {
  TempDir dir;
  std::string csv = "a,b,label\n";
  for (int i = 0; i < 60; ++i) csv += fmt::format("{},{},{}\n", i * 0.01, 1 - i * 0.01, i % 2);
  std::ofstream(dir.path() / "d.csv") << csv;
  std::ofstream(dir.path() / "m.json")
      << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 2}]})";
  auto q = [](const fs::path& p) { return fmt::format("'{}'", p.string()); };
  ASSERT_EQ(run_gpuml("data pack --quiet " + q(dir.path() / "d.csv") + " " + q(dir.path() / "sh")).exit_code, 0);
  auto t = run_gpuml("train --quiet --epochs 1 --model " + q(dir.path() / "m.json") + " --data " +
                     q(dir.path() / "sh") + " --out " + q(dir.path() / "run"));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto e = run_gpuml("eval --checkpoint " + q(dir.path() / "run"));
  EXPECT_EQ(e.exit_code, 1) << e.output;
  EXPECT_NE(e.output.find("has no test split to evaluate on (it has: train)"), std::string::npos) << e.output;
}

}  // namespace
}  // namespace gpuml
