// Issue 18, the trainer's part, through the command line: the learning rate per epoch, --resume
// that continues the run as it was configured, what a resumed run and its weights say about
// themselves, held-out validation by default when the data has no test split, and `gpuml eval`
// on the rows a run held out.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "e2e_support.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::run_gpuml;
using testing::TempDir;

std::string q(const fs::path& p) { return fmt::format("'{}'", p.string()); }

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream s(line);
  for (std::string cell; std::getline(s, cell, ',');) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

// The cell of `column` in each row of metrics.csv (the header is row 0).
std::vector<std::string> column(const fs::path& metrics, const std::string& name) {
  std::vector<std::string> lines = read_lines(metrics), values;
  if (lines.empty()) return values;
  std::vector<std::string> header = cells_of(lines[0]);
  size_t at = std::find(header.begin(), header.end(), name) - header.begin();
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> cells = cells_of(lines[i]);
    values.push_back(at < cells.size() ? cells[at] : std::string("<none>"));
  }
  return values;
}

bool has_column(const fs::path& metrics, const std::string& name) {
  std::vector<std::string> lines = read_lines(metrics);
  if (lines.empty()) return false;
  std::vector<std::string> header = cells_of(lines[0]);
  return std::find(header.begin(), header.end(), name) != header.end();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// 200 rows of two features and a class id 0..3 (no test split), and a linear model for them.
void write_csv_and_model(const fs::path& csv, const fs::path& model) {
  std::ofstream out(csv);
  out << "a,b,label\n";
  for (int i = 0; i < 200; ++i) out << (i % 4) * 2 + 0.01 * (i % 7) << "," << 0.5 - 0.01 * (i % 5) << "," << i % 4 << "\n";
  std::ofstream(model) << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 4}]})";
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The run's TensorBoard event file(s), concatenated.
std::string event_bytes(const fs::path& run) {
  std::string bytes;
  for (const auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) bytes += read_bytes(e.path());
  return bytes;
}

class TrainTruth : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    testing::write_fashion_subset(dir_.path() / "data", 640, 100);  // 10 batches of 64
  }
  // `gpuml train` of the mlp on the subset, one thread, into `run`.
  testing::CommandResult train(const fs::path& run, const std::string& flags) {
    return run_gpuml(fmt::format("train --model mlp --batch-size 64 --threads 1 --data {} --out {} {}",
                                 q(dir_.path() / "data"), q(run), flags));
  }
  TempDir dir_;
};

// The learning rate of each epoch is in the progress line, metrics.csv (column lr) and
// TensorBoard, so a schedule can be checked; a run resumed from a metrics.csv written before
// the column existed continues the table with it.
TEST_F(TrainTruth, EachEpochReportsItsLearningRate) {
  fs::path run = dir_.path() / "run";
  auto t = train(run, "--epochs 2 --lr 0.01 --schedule step:1:0.5");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_TRUE(contains(t.output, "lr 1.0e-02")) << t.output;
  EXPECT_TRUE(contains(t.output, "lr 5.0e-03")) << t.output;
  EXPECT_EQ(column(run / "metrics.csv", "lr"), (std::vector<std::string>{"0.01", "0.005"}));

  // An older run's table: no lr column.
  std::vector<std::string> lines = read_lines(run / "metrics.csv");
  std::ofstream old(run / "metrics.csv");
  for (const std::string& line : lines) old << line.substr(0, line.rfind(',')) << "\n";
  old.close();
  ASSERT_FALSE(has_column(run / "metrics.csv", "lr"));
  auto r = run_gpuml(fmt::format("train --threads 1 --epochs 3 --resume {}", q(run)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(column(run / "metrics.csv", "lr"), (std::vector<std::string>{"", "", "0.0025"}));
}

// --resume trains the epochs the run was configured with (not the default 5); --epochs changes
// them and the header says so; flags that set what the run fixed are refused, named, exit 2.
TEST_F(TrainTruth, ResumeTrainsTheRunsEpochsAndRefusesWhatTheRunFixed) {
  fs::path run = dir_.path() / "run";
  auto t = train(run, "--epochs 2 --max-steps 5");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  ASSERT_TRUE(contains(t.output, "continue with: gpuml train --resume")) << t.output;

  auto refused = run_gpuml(fmt::format("train --resume {} --lr 0.5 --seed 3 --epochs 2", q(run)));
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_TRUE(contains(refused.output, "--lr, --seed cannot change")) << refused.output;

  auto resumed = run_gpuml(fmt::format("train --threads 1 --resume {}", q(run)));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "2 epochs, batch 64")) << resumed.output;
  EXPECT_EQ(read_lines(run / "metrics.csv").size(), 3u) << "header and the run's 2 epochs";

  auto extended = run_gpuml(fmt::format("train --threads 1 --epochs 3 --resume {}", q(run)));
  ASSERT_EQ(extended.exit_code, 0) << extended.output;
  EXPECT_TRUE(contains(extended.output, "3 epochs (extended from 2 by --epochs)")) << extended.output;
  EXPECT_EQ(read_lines(run / "metrics.csv").size(), 4u);
}

// A resumed run says where it resumed, and its progress bar counts from there (10/10 at the end
// of an epoch resumed at batch 6, not 5/5); a run started from given weights names them.
TEST_F(TrainTruth, ResumeSaysWhereAndTheBarCountsFromThere) {
  fs::path run = dir_.path() / "run";
  auto t = train(run, "--epochs 1 --max-steps 5");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto resumed = run_gpuml(fmt::format("train --threads 1 --resume {}", q(run)));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resuming " + (run / "last.safetensors").string() +
                                           " at epoch 1, step 5 (batch 6 of 10)"))
      << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "] 10/10 ")) << resumed.output;

  auto init = train(dir_.path() / "init", fmt::format("--epochs 1 --max-steps 1 --init-from {}",
                                                      q(run / "model.safetensors")));
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_TRUE(contains(init.output, "starting weights: --init-from " + (run / "model.safetensors").string()))
      << init.output;
}

// Data without a test split holds out 10% (seeded) for validation by default, and says so; with
// --val-split 0 it trains on all of it and reports nothing as "test": no held-out columns, no
// best checkpoint by accuracy (eval reads last.safetensors), and --patience is refused.
TEST_F(TrainTruth, WithoutATestSplitTenPercentIsHeldOutOrNothingIsEvaluated) {
  const fs::path csv = dir_.path() / "rows.csv", model = dir_.path() / "linear.json";
  write_csv_and_model(csv, model);
  auto train_csv = [&](const fs::path& run, const std::string& flags) {
    return run_gpuml(fmt::format("train --model {} --data {} --batch-size 16 --threads 1 --epochs 2 --out {} {}",
                                 q(model), q(csv), q(run), flags));
  };
  const fs::path held = dir_.path() / "held", all = dir_.path() / "all";
  auto h = train_csv(held, "");
  ASSERT_EQ(h.exit_code, 0) << h.output;
  EXPECT_TRUE(contains(h.output, "validation: 10% of train held out (--val-split 0 to train on all)")) << h.output;
  EXPECT_TRUE(has_column(held / "metrics.csv", "val_accuracy"));
  EXPECT_FALSE(has_column(held / "metrics.csv", "test_accuracy"));
  EXPECT_TRUE(fs::exists(held / "best.safetensors"));

  auto a = train_csv(all, "--val-split 0");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_TRUE(contains(a.output, "validation: none (--val-split 0)")) << a.output;
  EXPECT_FALSE(contains(a.output, "| test")) << a.output;
  EXPECT_TRUE(contains(a.output, "no held-out data to evaluate")) << a.output;
  for (const char* name : {"test_accuracy", "test_loss", "val_accuracy", "val_loss"})
    EXPECT_FALSE(has_column(all / "metrics.csv", name)) << name;
  EXPECT_TRUE(has_column(all / "metrics.csv", "train_accuracy"));
  EXPECT_FALSE(contains(event_bytes(all), "test/accuracy"));
  EXPECT_TRUE(contains(event_bytes(all), "train/accuracy"));
  EXPECT_FALSE(fs::exists(all / "best.safetensors"));
  EXPECT_TRUE(fs::exists(all / "model.safetensors"));
  auto e = run_gpuml(fmt::format("eval --checkpoint {}", q(all)));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_TRUE(contains(e.output, "last.safetensors")) << e.output;
  EXPECT_TRUE(contains(e.output, "200 samples (train split)")) << e.output;

  auto p = train_csv(dir_.path() / "patient", "--val-split 0 --patience 2");
  EXPECT_NE(p.exit_code, 0) << p.output;
  EXPECT_TRUE(contains(p.output, "--patience 2 needs held-out data")) << p.output;
}

// `gpuml eval` on a run that held out a validation split evaluates those rows (the same split of
// the same data), not all of them, and says which; another --data is evaluated whole.
TEST_F(TrainTruth, EvalOfAValidationRunScoresTheHeldOutRows) {
  const fs::path csv = dir_.path() / "rows.csv", model = dir_.path() / "linear.json", run = dir_.path() / "run";
  write_csv_and_model(csv, model);
  auto t = run_gpuml(fmt::format("train --model {} --data {} --batch-size 16 --threads 1 --epochs 2 --seed 4 "
                                 "--val-split 0.3 --out {}",
                                 q(model), q(csv), q(run)));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto e = run_gpuml(fmt::format("eval --checkpoint {}", q(run)));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_TRUE(contains(e.output, "60 samples (validation split held out by the run)")) << e.output;
  // The same rows the run evaluated at its best epoch: the same accuracy.
  std::vector<std::string> acc = column(run / "metrics.csv", "val_accuracy");
  ASSERT_FALSE(acc.empty());
  const double best = std::stod(*std::max_element(acc.begin(), acc.end(), [](const std::string& x,
                                                                              const std::string& y) {
    return std::stod(x) < std::stod(y);
  }));
  EXPECT_TRUE(contains(e.output, fmt::format("accuracy {:.4f}", best))) << e.output << " best " << best;
  auto whole = run_gpuml(fmt::format("eval --checkpoint {} --data {}", q(run), q(csv)));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  EXPECT_TRUE(contains(whole.output, "200 samples (train split)")) << whole.output;
}

}  // namespace
}  // namespace gpuml
