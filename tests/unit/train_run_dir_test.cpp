// train/run_dir.h: which --out a run may take, what --overwrite clears, unique default names.
#include "train/run_dir.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>

#include "core/error.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;

std::string refusal(const TrainConfig& cfg) {
  try {
    check_run_dir(cfg);
  } catch (const Error& e) {
    return e.message();
  }
  return {};
}

// Many threads asking for the same name at once each get a directory of their own: the name is
// claimed by mkdir, not by looking first (two runs in the same second shared one before).
TEST(RunDir, UniqueNamesUnderContention) {
  testing::TempDir dir;
  constexpr int kThreads = 8;
  std::vector<fs::path> got(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] { got[i] = create_unique_dir(dir.path() / "runs", "mlp-20270101-120000"); });
  for (std::thread& t : threads) t.join();
  std::set<fs::path> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kThreads));
  EXPECT_TRUE(distinct.count(dir.path() / "runs" / "mlp-20270101-120000"));
  EXPECT_TRUE(distinct.count(dir.path() / "runs" / "mlp-20270101-120000-8"));
  // A file in the way of a name is skipped, not an error.
  std::ofstream(dir.path() / "runs" / "cnn-x") << "x";
  EXPECT_EQ(create_unique_dir(dir.path() / "runs", "cnn-x"), dir.path() / "runs" / "cnn-x-2");
}

TEST(RunDir, RunFilesAndTheirTemporaries) {
  for (const char* name : {"model.json", "config.json", "metrics.csv", "curves.svg", "last.safetensors",
                           "best.safetensors", "model.safetensors", "events.out.tfevents.1700000000.host",
                           ".last.safetensors.tmp.123.00000000deadbeef"})
    EXPECT_TRUE(is_run_file(name)) << name;
  for (const char* name : {"notes.txt", "pred.csv", ".bashrc", ".notes.tmp.1.2", "model.json.bak", "events.out"})
    EXPECT_FALSE(is_run_file(name)) << name;
}

TEST(RunDir, NonEmptyIsRefusedOverwriteClearsOnlyARun) {
  testing::TempDir dir;
  TrainConfig cfg;
  cfg.out = (dir.path() / "run").string();
  EXPECT_EQ(refusal(cfg), "");  // absent: fine, and nothing is created by the check
  EXPECT_FALSE(fs::exists(cfg.out));
  fs::create_directories(cfg.out);
  EXPECT_EQ(refusal(cfg), "");  // empty
  for (const char* f : {"model.json", "best.safetensors", "events.out.tfevents.1.h"})
    std::ofstream(dir.path() / "run" / f) << "old";
  EXPECT_NE(refusal(cfg).find("the directory is not empty (best.safetensors, events.out.tfevents.1.h, model.json)"),
            std::string::npos)
      << refusal(cfg);
  cfg.overwrite = true;
  EXPECT_EQ(refusal(cfg), "");
  EXPECT_EQ(open_run_dir(cfg), fs::path(cfg.out));
  EXPECT_TRUE(fs::is_empty(cfg.out)) << "--overwrite left the earlier run's files";

  std::ofstream(dir.path() / "run" / "model.json") << "old";
  std::ofstream(dir.path() / "run" / "todo.txt") << "mine";
  EXPECT_NE(refusal(cfg).find("holds todo.txt, which a run does not write"), std::string::npos) << refusal(cfg);
  EXPECT_THROW(open_run_dir(cfg), Error);
  EXPECT_TRUE(fs::exists(dir.path() / "run" / "todo.txt"));
  EXPECT_TRUE(fs::exists(dir.path() / "run" / "model.json"));

  cfg.out = (dir.path() / "run" / "todo.txt").string();
  EXPECT_NE(refusal(cfg).find("is a file, not a directory"), std::string::npos) << refusal(cfg);
}

// A resumed run continues in its own directory, given as the directory or a checkpoint in it;
// another non-empty --out is still refused.
TEST(RunDir, ResumeKeepsItsOwnDirectory) {
  testing::TempDir dir;
  fs::create_directories(dir.path() / "run");
  std::ofstream(dir.path() / "run" / "last.safetensors") << "old";
  TrainConfig cfg;
  cfg.out = (dir.path() / "run").string();
  cfg.resume = (dir.path() / "run" / "last.safetensors").string();
  EXPECT_EQ(refusal(cfg), "");
  cfg.resume = (dir.path() / "run").string() + "/";
  EXPECT_EQ(refusal(cfg), "");
  EXPECT_EQ(open_run_dir(cfg), fs::path(cfg.out));
  EXPECT_TRUE(fs::exists(dir.path() / "run" / "last.safetensors"));
  cfg.overwrite = true;
  EXPECT_NE(refusal(cfg).find("would delete the run being resumed"), std::string::npos) << refusal(cfg);
  cfg.overwrite = false;
  fs::create_directories(dir.path() / "other");
  std::ofstream(dir.path() / "other" / "metrics.csv") << "x";
  cfg.out = (dir.path() / "other").string();
  EXPECT_NE(refusal(cfg).find("not empty"), std::string::npos) << refusal(cfg);
}

}  // namespace
}  // namespace gpuml
