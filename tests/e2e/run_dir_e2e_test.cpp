// Issue 18, item 1: run directories never mix. A second run into a non-empty --out is refused
// (exit 2) unless --overwrite clears the earlier run; default names are unique even for runs
// started in the same second.
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

using testing::q;
using testing::read_text;

int count_entries(const fs::path& dir, const std::string& prefix) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().rfind(prefix, 0) == 0;
  return n;
}

class RunDirE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream out(csv_);
    out << "a,b,label\n";
    for (int i = 0; i < 24; ++i) out << i % 3 << "," << 0.1 * i << "," << i % 3 << "\n";
    out.close();
    write_model(linear_, R"([{"type": "Linear", "in_features": 2, "out_features": 3}])");
    write_model(deeper_, R"([{"type": "Linear", "in_features": 2, "out_features": 4, "name": "hidden"},
        {"type": "ReLU"}, {"type": "Linear", "in_features": 4, "out_features": 3, "name": "head"}])");
  }
  static void write_model(const fs::path& path, const std::string& layers) {
    std::ofstream(path) << R"({"input_shape": [2], "layers": )" << layers << "}";
  }
  std::string train(const fs::path& model, const std::string& extra) const {
    return "train --quiet --epochs 1 --batch-size 8 --data " + q(csv_) + " --model " + q(model) + " " + extra;
  }
  TempDir dir_;
  fs::path csv_ = dir_.path() / "rows.csv", linear_ = dir_.path() / "linear.json", deeper_ = dir_.path() / "deeper.json";
};

// The issue's case: a second model trained into an earlier run's directory. Before, it succeeded
// and left model.json describing the new model beside the old run's best.safetensors.
TEST_F(RunDirE2E, ANonEmptyOutIsRefusedAndOverwriteClearsTheEarlierRun) {
  fs::path run = dir_.path() / "run";
  auto first = run_gpuml(train(linear_, "--out " + q(run)));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::string first_weights = read_text(run / "best.safetensors");

  auto mixed = run_gpuml(train(deeper_, "--out " + q(run)));
  EXPECT_EQ(mixed.exit_code, 2) << mixed.output;
  EXPECT_NE(mixed.output.find("--out " + run.string() + ": the directory is not empty"), std::string::npos)
      << mixed.output;
  EXPECT_NE(mixed.output.find("--overwrite"), std::string::npos) << mixed.output;
  EXPECT_NE(mixed.output.find("--resume " + run.string()), std::string::npos) << mixed.output;
  EXPECT_EQ(read_text(run / "model.json").find("hidden"), std::string::npos) << "the refused run wrote model.json";
  EXPECT_EQ(read_text(run / "best.safetensors"), first_weights);

  auto replaced = run_gpuml(train(deeper_, "--overwrite --out " + q(run)));
  ASSERT_EQ(replaced.exit_code, 0) << replaced.output;
  EXPECT_NE(read_text(run / "model.json").find("hidden"), std::string::npos);
  EXPECT_NE(read_text(run / "best.safetensors").find("hidden.weight"), std::string::npos);
  EXPECT_EQ(count_entries(run, "events.out.tfevents."), 1) << "the earlier run's event file was kept";
  auto exported = run_gpuml("export --checkpoint " + q(run) + " --npz " + q(dir_.path() / "w.npz"));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(exported.output.find("wrote 4 tensors"), std::string::npos) << exported.output;  // the deeper model's

  // Resuming into the run's own directory is no mixing; --overwrite there would delete it.
  auto resumed = run_gpuml("train --quiet --epochs 2 --resume " + q(run));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  auto wipe = run_gpuml("train --quiet --epochs 3 --overwrite --resume " + q(run));
  EXPECT_EQ(wipe.exit_code, 2) << wipe.output;
  EXPECT_NE(wipe.output.find("it would delete the run being resumed"), std::string::npos) << wipe.output;
  EXPECT_TRUE(fs::exists(run / "last.safetensors"));
}

// --overwrite clears an earlier run's files only: a directory with anything else in it (a
// mistyped --out naming a home directory) is refused and left whole. An empty one is taken.
TEST_F(RunDirE2E, OverwriteRefusesADirectoryThatIsNotARun) {
  fs::path mine = dir_.path() / "mine";
  fs::create_directories(mine / "photos");
  std::ofstream(mine / "notes.txt") << "keep me";
  std::ofstream(mine / "config.json") << "{}";
  auto r = run_gpuml(train(linear_, "--overwrite --out " + q(mine)));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("holds notes.txt, photos/, which a run does not write"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(mine / "notes.txt"));
  EXPECT_TRUE(fs::exists(mine / "config.json"));

  fs::path empty = dir_.path() / "empty";
  fs::create_directories(empty);
  auto e = run_gpuml(train(linear_, "--out " + q(empty)));
  EXPECT_EQ(e.exit_code, 0) << e.output;
  EXPECT_TRUE(fs::exists(empty / "last.safetensors"));
}

// Two runs without --out started together get a directory each (before: the same
// runs/<model>-<second> for both when they started in the same second).
TEST_F(RunDirE2E, DefaultRunNamesAreUniqueForRunsStartedTogether) {
  const std::string cli = testing::gpuml_cli_path();
  const std::string one = "'" + cli + "' " + train(linear_, "");
  auto r = testing::run_shell("cd " + q(dir_.path()) + " && { " + one + " & " + one + " & " + one + " & wait; }");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> runs;
  for (const auto& e : fs::directory_iterator(dir_.path() / "runs")) runs.push_back(e.path().filename().string());
  ASSERT_EQ(runs.size(), 3u) << r.output;
  for (const std::string& name : runs) {
    EXPECT_EQ(name.rfind("linear-", 0), 0u) << name;
    EXPECT_TRUE(fs::exists(dir_.path() / "runs" / name / "last.safetensors")) << name;
  }
}

}  // namespace
}  // namespace gpuml
