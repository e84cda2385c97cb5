// Tasks through the command line (issue 19): `--task auto` picks regression for a CSV of
// fractional targets and a language model for token sequences, the header says so, metrics.csv
// and `gpuml eval` report the task's metric, predict writes values, and a misspelt task is a
// usage error.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <random>

#include "e2e_support.h"
#include "interop/weights_file.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::q;
using testing::read_text;
using testing::run_gpuml;
using testing::TempDir;

class TaskCli : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(TaskCli, RegressionFromACsvOfFractionalTargets) {
  const fs::path csv = dir_.path() / "house.csv", model = dir_.path() / "linear.json", run = dir_.path() / "run";
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  std::ofstream out(csv);
  out << "a,b,price\n";
  for (int i = 0; i < 200; ++i) {
    const double a = u(rng), b = u(rng);
    out << fmt::format("{:.4f},{:.4f},{:.4f}\n", a, b, 2 * a - b + 0.25);
  }
  out.close();
  std::ofstream(model) << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 1}]})";
  auto t = run_gpuml(fmt::format("train --threads 1 --epochs 20 --batch-size 16 --lr 0.05 --data {} --model {} --out {}",
                                 q(csv), q(model), q(run)));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("task: regression (auto: the model has one output), metric rmse"), std::string::npos)
      << t.output;
  EXPECT_NE(t.output.find("train rmse"), std::string::npos) << t.output;
  const std::string metrics = read_text(run / "metrics.csv");
  EXPECT_NE(metrics.find("train_rmse"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("val_rmse"), std::string::npos) << metrics;
  EXPECT_NE(read_text(run / "config.json").find(R"("task": "regression")"), std::string::npos);
  auto e = run_gpuml(fmt::format("eval --checkpoint {}", q(run)));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const size_t at = e.output.find("rmse ");
  ASSERT_NE(at, std::string::npos) << e.output;
  const double rmse = std::stod(e.output.substr(at + 5));
  EXPECT_LT(rmse, 0.1) << "an exactly linear target";
  const fs::path inputs = dir_.path() / "in.csv", preds = dir_.path() / "p.csv";
  std::ofstream(inputs) << "a,b\n0.5,0.5\n-1,0\n";
  auto p = run_gpuml(fmt::format("predict --checkpoint {} --input {} --output {}", q(run), q(inputs), q(preds)));
  ASSERT_EQ(p.exit_code, 0) << p.output;
  const std::string text = read_text(preds);
  ASSERT_EQ(text.rfind("value\n", 0), 0u) << text;
  const double first = std::stod(text.substr(6));
  EXPECT_NEAR(first, 2 * 0.5 - 0.5 + 0.25, 0.1) << text;
}

TEST_F(TaskCli, LanguageModelFromTokenSequences) {
  const int64_t n = 128, len = 6, vocab = 9;
  Tensor x = Tensor::empty({n, len}, DType::i32), y = Tensor::empty({n, len}, DType::i32);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < len; ++j) {
      x.data<int32_t>()[i * len + j] = static_cast<int32_t>((i + j) % vocab);
      y.data<int32_t>()[i * len + j] = static_cast<int32_t>((i + j + 1) % vocab);
    }
  const fs::path data = dir_.path() / "tokens.npz", model = dir_.path() / "bigram.json", run = dir_.path() / "lm";
  interop::save_npz_weights(data, {{"x", x}, {"y", y}});
  std::ofstream(model) << fmt::format(R"({{"input_shape": [{0}], "layers": [
    {{"type": "Embedding", "num_embeddings": {1}, "embedding_dim": 8}},
    {{"type": "Linear", "in_features": 8, "out_features": {1}}}]}})", len, vocab);
  auto t = run_gpuml(fmt::format("train --threads 1 --epochs 6 --batch-size 16 --lr 0.03 --data {} --model {} --out {}",
                                 q(data), q(model), q(run)));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("task: language-model (auto: token targets (6)"), std::string::npos) << t.output;
  const std::string metrics = read_text(run / "metrics.csv");
  EXPECT_NE(metrics.find("train_perplexity"), std::string::npos) << metrics;
  auto p = run_gpuml(fmt::format("predict --checkpoint {} --input {} --output {}", q(run), q(data),
                                 q(dir_.path() / "p.csv")));
  EXPECT_EQ(p.exit_code, 1) << p.output;
  EXPECT_NE(p.output.find("a language model predicts (N, T, V) per token; write them to an .npy file"),
            std::string::npos) << p.output;
  auto npy = run_gpuml(fmt::format("predict --checkpoint {} --input {} --output {}", q(run), q(data),
                                   q(dir_.path() / "p.npy")));
  EXPECT_EQ(npy.exit_code, 0) << npy.output;
}

// A .txt file trains a character language model (issue 20's text data): the header says so,
// perplexity falls well below the vocabulary's size on a repetitive text, and eval scores the
// text's last 10%.
TEST_F(TaskCli, TextTrainsACharacterLanguageModel) {
  const fs::path text = dir_.path() / "song.txt", model = dir_.path() / "bigram.json", run = dir_.path() / "run";
  std::ofstream out(text);
  for (int i = 0; i < 60; ++i) out << "la la land, da da dee\n";
  out.close();
  std::ofstream(model) << R"({"input_shape": [8], "layers": [{"type": "Embedding", "num_embeddings": 12,
    "embedding_dim": 16}, {"type": "Linear", "in_features": 16, "out_features": 12}]})";
  auto t = run_gpuml(fmt::format("train --threads 1 --epochs 15 --batch-size 8 --lr 0.02 --data {} --model {} --out {} "
                                 "--eval-every 20 --eval-iters 1",
                                 q(text), q(model), q(run)));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("task: language-model (auto: text), metric perplexity"), std::string::npos) << t.output;
  // --eval-every 20 --eval-iters 1: the first batch of 8 validation windows, every 20 steps.
  EXPECT_NE(t.output.find("step 20: val loss"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("(8 rows)"), std::string::npos) << t.output;
  const std::string steps = read_text(run / "steps.csv");
  EXPECT_EQ(steps.rfind("step,epoch,lr,rows,val_loss,val_perplexity\n20,", 0), 0u) << steps;
  EXPECT_NE(t.output.find("8 distinct"), std::string::npos) << t.output;
  EXPECT_NE(read_text(run / "config.json").find(R"("class_names")"), std::string::npos) << "the vocabulary is kept";
  auto e = run_gpuml(fmt::format("eval --checkpoint {}", q(run)));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const size_t at = e.output.find("perplexity ");
  ASSERT_NE(at, std::string::npos) << e.output;
  EXPECT_LT(std::stod(e.output.substr(at + 11)), 3.0) << "8 characters; after 'l' comes 'a', ...";
  std::ofstream(dir_.path() / "bin.txt", std::ios::binary) << std::string("ab\0cd", 5) << std::string(200, 'x');
  auto b = run_gpuml(fmt::format("train --data {} --model {} --out {}", q(dir_.path() / "bin.txt"), q(model),
                                 q(dir_.path() / "b")));
  EXPECT_EQ(b.exit_code, 1) << b.output;
  EXPECT_NE(b.output.find("byte 2 is a NUL"), std::string::npos) << b.output;
}

TEST_F(TaskCli, AMisspeltTaskIsAUsageError) {
  auto r = run_gpuml("train --task regresion --epochs 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("did you mean 'regression'"), std::string::npos) << r.output;
}

// A regression target that is not a number, and --eval-every with nothing held out, are refused
// naming the problem.
TEST_F(TaskCli, BadTargetsAndEvalEveryWithoutHeldOutDataAreRefused) {
  const fs::path csv = dir_.path() / "words.csv", model = dir_.path() / "linear.json";
  std::ofstream(csv) << "a,b,price\n0.1,0.2,cheap\n0.3,0.1,0.5\n";
  std::ofstream(model) << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 1}]})";
  auto r = run_gpuml(fmt::format("train --task regression --data {} --model {} --out {}", q(csv), q(model),
                                 q(dir_.path() / "r")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("label 'cheap' is not a number"), std::string::npos) << r.output;
  const fs::path good = dir_.path() / "good.csv";
  std::ofstream(good) << "a,b,price\n0.1,0.2,0.25\n0.3,0.1,0.5\n";
  auto e = run_gpuml(fmt::format("train --val-split 0 --eval-every 5 --data {} --model {} --out {}", q(good),
                                 q(model), q(dir_.path() / "e")));
  EXPECT_EQ(e.exit_code, 1) << e.output;
  EXPECT_NE(e.output.find("--eval-every 5 needs held-out data"), std::string::npos) << e.output;
}

}  // namespace
}  // namespace gpuml
