// Data parallelism beyond in-memory data, under mpirun (label `dist`): a sharded dataset and a
// text file split across ranks train as one process of the global batch does, and their
// evaluation, split over the ranks and added up, reports one process's figures; --resume by the
// same number of processes is exact, by another it continues with a warning.
//
// Tolerances (fp32, --deterministic, --threads 1): the ranks add the same float terms as one
// process in another order (each rank's rows, then the all-reduce), a few ulps a step, which Adam
// magnifies where a gradient is near zero (it divides by sqrt(v)): a weight can move by a visible
// fraction of lr. Weights: 1e-5 absolute after 20 steps of the mlp on shards at lr 1e-3
// (measured: 9.5e-7; the control 3.0e-2), 1e-4 after 12 steps of a tiny GPT on text at lr 3e-3
// (measured: 1.1e-5; the control 5.1e-2). Evaluation loss:
// 1e-4 relative (the weights' difference, and the ranks' float64 sums added in another order;
// measured: 3.6e-8 and 1.9e-8); accuracy within one row of the 200 held out (measured: equal).
// Each equivalence has a control (one process of the per-rank batch) that differs by far more.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <fstream>

#include "dist_support.h"
#include "e2e_support.h"
#include "io/metrics_csv.h"
#include "train/checkpoint.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::kMpirun;
using testing::max_difference;
using testing::mpi_ready;
using testing::q;
using testing::run_shell;
using testing::TempDir;

std::vector<double> column(const fs::path& csv, const std::string& name) {
  MetricsCsv m(csv);
  m.keep_existing(1000);
  return m.column_values(name);
}

// The largest |a - b| / max(|b|, 1e-12) over two columns of equal length.
double max_relative(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  EXPECT_FALSE(a.empty());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_TRUE(std::isfinite(a[i]) && std::isfinite(b[i])) << i;
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), 1e-12));
  }
  return worst;
}

testing::CommandResult ranks(int n, const std::string& args) {
  return run_shell(fmt::format("timeout 300 {} -np {} {} {}", kMpirun, n, q(GPUML_CLI_PATH), args));
}

class ShardRanks : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_READY(mpi_ready);
    testing::write_fashion_subset(dir_.path() / "data", 1000, 200);
    auto p = testing::run_gpuml("data pack --quiet " + q(dir_.path() / "data") + " " + q(shards()) +
                                " --shard-size 64K");
    ASSERT_EQ(p.exit_code, 0) << p.output;
  }
  fs::path shards() const { return dir_.path() / "shards"; }
  // 1000 records in 13 shards through a 300-record shuffle buffer: 8 global batches of 128 an
  // epoch, the last of 104 rows; 20 steps end in the third epoch. --eval-every 5 --eval-iters 1:
  // the first global batch of the 200 test rows.
  std::string train_args(const fs::path& out, int batch, const std::string& more = "") const {
    return fmt::format(
        "train --model mlp --data {} --batch-size {} --steps 20 --threads 1 --deterministic --seed "
        "1 "
        "--data-memory-limit 4M --shuffle-buffer 300 --eval-every 5 --eval-iters 1 --quiet --out "
        "{}{}",
        q(shards()), batch, q(out), more);
  }
  TempDir dir_;
};

TEST_F(ShardRanks, TwoRanksOfBatch64TrainAndEvaluateAsOneProcessOfBatch128) {
  const fs::path one = dir_.path() / "one", two = dir_.path() / "two",
                 control = dir_.path() / "control";
  auto r = testing::run_gpuml(train_args(one, 128));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = ranks(2, train_args(two, 64));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double weights = max_difference(one / "model.safetensors", two / "model.safetensors");
  EXPECT_LT(weights, 1e-5);
  RecordProperty("max_weight_difference", fmt::format("{:.3g}", weights));
  // The evaluation each epoch and every 5 steps: the ranks' parts added up, as one process's.
  const double epoch_loss = max_relative(column(two / "metrics.csv", "test_loss"),
                                         column(one / "metrics.csv", "test_loss"));
  const double step_loss =
      max_relative(column(two / "steps.csv", "test_loss"), column(one / "steps.csv", "test_loss"));
  EXPECT_LT(epoch_loss, 1e-4);
  EXPECT_LT(step_loss, 1e-4);
  RecordProperty("max_eval_loss_relative_difference",
                 fmt::format("{:.3g}", std::max(epoch_loss, step_loss)));
  const std::vector<double> acc_one = column(one / "metrics.csv", "test_accuracy"),
                            acc_two = column(two / "metrics.csv", "test_accuracy");
  ASSERT_EQ(acc_one.size(), 3u);
  ASSERT_EQ(acc_two.size(), 3u);
  for (size_t e = 0; e < 3; ++e)
    EXPECT_LE(std::abs(acc_one[e] - acc_two[e]), 1.0 / 200 + 1e-9) << "epoch " << e + 1;
  EXPECT_EQ(column(two / "steps.csv", "rows"),
            std::vector<double>(4, 128.0));  // eval-iters 1: one global batch

  // The control: one process of batch 64 sees other batches.
  r = testing::run_gpuml(train_args(control, 64));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(max_difference(one / "model.safetensors", control / "model.safetensors"), 1e-4)
      << "the control run is as close as the data-parallel one: the check cannot tell";
  // (16 batches an epoch: 2 epochs; the step evaluations line up.)
  EXPECT_GT(max_relative(column(control / "steps.csv", "test_loss"),
                         column(one / "steps.csv", "test_loss")),
            1e-3);
}

TEST_F(ShardRanks, ResumeByTheSameRanksIsExactAndTheCheckpointRecordsThem) {
  const fs::path whole = dir_.path() / "whole", split = dir_.path() / "split";
  auto r = ranks(2, train_args(whole, 64));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = ranks(
      2, train_args(split, 64, " --max-steps 11"));  // stopped in the second epoch, at its batch 3
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(load_checkpoint(split / "last.safetensors").progress.world_size, 2);
  r = ranks(2, "train --quiet --threads 1 --resume " + q(split));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning:"), std::string::npos) << r.output;
  EXPECT_EQ(max_difference(whole / "model.safetensors", split / "model.safetensors"), 0.0);
}

TEST_F(ShardRanks, ResumeByAnotherNumberOfRanksContinuesWithAWarning) {
  const fs::path run = dir_.path() / "run";
  auto r = testing::run_gpuml(
      train_args(run, 64, " --max-steps 11"));  // one process: 16 batches an epoch
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(load_checkpoint(run / "last.safetensors").progress.world_size, 1);
  r = ranks(2, "train --quiet --threads 1 --resume " + q(run));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(
      r.output.find(
          "warning: --resume " + (run / "last.safetensors").string() +
          ": the run was trained by 1 process and continues in 2: the global batch is now 128 rows "
          "instead of 64, so the data order changes"),
      std::string::npos)
      << r.output;
  // 11 batches of 64 rows were trained: the epoch goes on at batch 5 of 128 (704 rows = 5.5
  // batches).
  EXPECT_NE(r.output.find("(the epoch continues at batch 5 of the new size, after 704 rows)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("warning:"), r.output.rfind("warning:"))
      << "rank 1 warned too: " << r.output;
  const Checkpoint last = load_checkpoint(run / "last.safetensors");
  EXPECT_EQ(last.progress.world_size, 2);
  EXPECT_EQ(last.progress.step, 20);
}

// A tiny GPT (the preset layout) over up to 64 characters, reading windows of 16.
std::string tiny_gpt() {
  return R"({"input_shape": [16], "layers": [
 {"type": "Embedding", "name": "wte", "num_embeddings": 64, "embedding_dim": 32, "init_std": 0.02},
 {"type": "PositionEmbedding", "name": "wpe", "num_embeddings": 16, "embedding_dim": 32},
 {"type": "Sequential", "name": "blocks", "layers": [{"type": "TransformerBlock", "n_embd": 32, "n_head": 2, "n_layer": 1}]},
 {"type": "LayerNorm", "name": "ln_f", "normalized_shape": 32},
 {"type": "Linear", "name": "head", "in_features": 32, "out_features": 64, "bias": false, "tied_to": "wte.weight"}]})";
}

TEST(TextRanks, TwoRanksOfBatch8TrainAndEvaluateATinyGptAsOneProcessOfBatch16) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  const fs::path text = dir.path() / "play.txt", model = dir.path() / "gpt.json";
  {
    std::ofstream out(text, std::ios::binary);
    for (int i = 0; i < 800; ++i)
      out << "ROMEO: " << (i % 7) << " roses, " << (i * 3 % 11) << " thorns; what's in a name?\n";
  }
  std::ofstream(model) << tiny_gpt();
  auto args = [&](const fs::path& out, int batch) {
    return fmt::format(
        "train --data {} --model {} --batch-size {} --steps 12 --lr 3e-3 --optimizer adamw "
        "--threads 1 "
        "--deterministic --seed 1 --eval-every 6 --eval-iters 2 --quiet --out {}",
        q(text), q(model), batch, q(out));
  };
  const fs::path one = dir.path() / "one", two = dir.path() / "two",
                 control = dir.path() / "control";
  auto r = testing::run_gpuml(args(one, 16));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = ranks(2, args(two, 8));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double weights = max_difference(one / "model.safetensors", two / "model.safetensors");
  EXPECT_LT(weights, 1e-4);
  RecordProperty("max_weight_difference", fmt::format("{:.3g}", weights));
  const double eval_loss = std::max(
      max_relative(column(two / "metrics.csv", "val_loss"),
                   column(one / "metrics.csv", "val_loss")),
      max_relative(column(two / "steps.csv", "val_loss"), column(one / "steps.csv", "val_loss")));
  EXPECT_LT(eval_loss, 1e-4);
  RecordProperty("max_eval_loss_relative_difference", fmt::format("{:.3g}", eval_loss));
  EXPECT_EQ(column(two / "steps.csv", "rows"),
            std::vector<double>(2, 32.0));  // eval-iters 2 of 16 windows
  r = testing::run_gpuml(args(control, 8));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(max_difference(one / "model.safetensors", control / "model.safetensors"), 1e-3)
      << "the control run is as close as the data-parallel one: the check cannot tell";
}

}  // namespace
}  // namespace gpuml
