// The gpuml binary: train, eval, predict, and its errors (message, non-zero exit, no partial file).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "e2e_support.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::run_gpuml;
using testing::TempDir;

class CliE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    testing::write_fashion_subset(dir_.path() / "data", 1000, 200);
  }
  std::string data() const { return "--data '" + (dir_.path() / "data").string() + "'"; }
  std::string run() const { return (dir_.path() / "run").string(); }
  TempDir dir_;
};

// --device cpu never loads the CUDA plugin (no context, handles or pinned memory on the GPUs).
// Seen from outside with the loader's own trace: `gpuml info` (a positive control) looks for the
// driver, libcuda.so.1, before it opens the plugin; a CPU training run must not look for it.
TEST_F(CliE2E, DeviceCpuDoesNotLoadTheCudaPlugin) {
  auto info = run_gpuml("info");
  if (info.output.find("plugin not built") != std::string::npos || info.output.find(" not found (searched") != std::string::npos)
    GTEST_SKIP() << "no CUDA plugin in this build";
  // The loader's trace (LD_DEBUG=libs, glibc) of one gpuml command, stdout dropped.
  auto trace = [](const std::string& args) {
    std::string out;
    const std::string cli = testing::gpuml_cli_path();
    const std::string command = std::string("LD_DEBUG=libs '") + cli + "' " + args + " 2>&1 > /dev/null";
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char buffer[4096];
      while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
      pclose(pipe);
    }
    return out;
  };
  ASSERT_NE(trace("info").find("libcuda.so.1"), std::string::npos) << "the trace does not show the driver lookup";
  const std::string t = trace("train --device cpu --model mlp --epochs 1 --max-steps 2 --quiet " + data() + " --out '" + run() + "'");
  EXPECT_NE(t.find("libgpuml.so"), std::string::npos) << "the trace is empty:\n" << t.substr(0, 2000);
  EXPECT_EQ(t.find("libcuda.so.1"), std::string::npos) << "--device cpu looked for the CUDA driver";
  EXPECT_EQ(t.find("libgpuml_cuda"), std::string::npos) << "--device cpu opened the CUDA plugin";
}

TEST_F(CliE2E, TrainEvalPredict) {
  auto t = run_gpuml("train --model mlp --epochs 1 --quiet " + data() + " --out '" + run() + "'");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("done: 1 epoch,"), std::string::npos) << t.output;
  auto e = run_gpuml("eval --checkpoint '" + run() + "' " + data());
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NE(e.output.find("200 samples (test split)"), std::string::npos) << e.output;
  fs::path out = dir_.path() / "pred.csv";
  auto p = run_gpuml("predict --checkpoint '" + run() + "' --input '" +
                     (dir_.path() / "data" / "t10k-images-idx3-ubyte").string() + "' --output '" + out.string() + "'");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  std::ifstream in(out);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header, "label,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9");
  int rows = 0;
  for (std::string line; std::getline(in, line);) ++rows;
  EXPECT_EQ(rows, 200);
  fs::path npy = dir_.path() / "pred.npy";
  auto q = run_gpuml("predict --checkpoint '" + run() + "' --input '" +
                     (dir_.path() / "data" / "t10k-images-idx3-ubyte").string() + "' --output '" + npy.string() + "'");
  ASSERT_EQ(q.exit_code, 0) << q.output;
  EXPECT_TRUE(fs::exists(npy));
  EXPECT_TRUE(fs::exists(dir_.path() / "pred.labels.npy"));
  auto low = run_gpuml("eval --precision bf16 --checkpoint '" + run() + "' " + data());
  ASSERT_EQ(low.exit_code, 0) << low.output;
  EXPECT_NE(low.output.find("200 samples (test split)"), std::string::npos) << low.output;
}

// Stopped by --max-steps before the first epoch ends: no accuracy exists yet, and the summary
// must not print zeros as if it did.
TEST_F(CliE2E, StoppedBeforeAnyEpochEndsSaysSoInsteadOfZeroAccuracy) {
  auto t = run_gpuml("train --model mlp --epochs 1 --max-steps 2 --quiet " + data() + " --out '" + run() + "'");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("stopped after --max-steps 2"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("done: no epoch finished in this run"), std::string::npos) << t.output;
  EXPECT_EQ(t.output.find("acc 0.0000"), std::string::npos) << t.output;
}

// --cuda-graphs / --no-cuda-graphs are accepted everywhere; on a CPU they change nothing and
// no CUDA graph line is printed.
TEST_F(CliE2E, CudaGraphFlagsAreAcceptedAndSilentOnCpu) {
  for (const char* flag : {"--cuda-graphs", "--no-cuda-graphs"}) {
    auto t = run_gpuml(std::string("train --model mlp --epochs 1 --max-steps 1 --device cpu ") + flag + " " + data() +
                       " --out '" + (dir_.path() / flag).string() + "'");
    ASSERT_EQ(t.exit_code, 0) << t.output;
    EXPECT_EQ(t.output.find("CUDA graphs"), std::string::npos) << t.output;
  }
}

TEST_F(CliE2E, BadInputsFailWithAClearMessageAndNoOutput) {
  struct Case {
    std::string args, expect;
  };
  fs::path csv = dir_.path() / "bad.csv";
  std::ofstream(csv) << "a,b,label\n1,2,0\n3,nan,1\n";
  fs::path ragged = dir_.path() / "ragged.csv";
  std::ofstream(ragged) << "a,b,label\n1,2,0\n3,1\n";
  std::vector<Case> cases = {
      {"train --data /nonexistent/dir --quiet", "no such file"},
      {"train --model nosuchmodel --quiet " + data(), "nosuchmodel"},
      {"train --epochs 0 " + data(), "--epochs"},
      {"train --checkpoint-every -5 " + data(), "--checkpoint-every: must be >= 0, got -5"},
      {"train --max-steps -1 " + data(), "--max-steps: must be >= 0, got -1"},
      {"train --bucket-mb 0 " + data(), "--bucket-mb: must be > 0, got 0"},
      {"train --zero 2 " + data(), "--zero: 2 not in {0,1}"},
      {"train --data-memory-limit lots " + data(), "--data-memory-limit"},
      {"train --optimizer rmsprop " + data(), "rmsprop"},
      {"train --precision fp16 " + data(), "--precision: fp16 not in {fp32,tf32,bf16}"},
      {"train --cuda-graphs=maybe " + data(), "--cuda-graphs = maybe"},
      {"train --device cuda --quiet " + data(), "no CUDA backend"},
      {"train --quiet --data '" + csv.string() + "'", "bad.csv:3"},
      {"train --quiet --data '" + ragged.string() + "'", "ragged.csv:3"},
      {"eval --checkpoint /nonexistent", "no checkpoint"},
      {"eval --checkpoint /nonexistent --precision fp16", "--precision: fp16 not in {fp32,tf32,bf16}"},
      {"predict --checkpoint x --input x --output y.csv --precision half", "--precision: half not in"},
      {"predict --checkpoint /nonexistent --input x --output y.csv", "no checkpoint"},
  };
  for (const Case& c : cases) {
    bool is_train = c.args.rfind("train", 0) == 0;
    auto r = run_gpuml(c.args + (is_train ? " --out '" + (dir_.path() / "never").string() + "'" : ""));
    EXPECT_NE(r.exit_code, 0) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_.path() / "never" / "last.safetensors")) << c.args;
  }
}

TEST_F(CliE2E, ModelThatDoesNotFitTheDataIsRejectedBeforeTraining) {
  fs::path model = dir_.path() / "wrong.json";
  std::ofstream(model) << R"({"input_shape": [3, 32, 32], "layers": [{"type": "Flatten"},
      {"type": "Linear", "in_features": 3072, "out_features": 10}]})";
  auto r = run_gpuml("train --quiet --model '" + model.string() + "' " + data() + " --out '" + run() + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("(3, 32, 32)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(fs::path(run()) / "last.safetensors"));
}

TEST_F(CliE2E, PredictIntoAMissingDirectoryLeavesNothing) {
  ASSERT_EQ(run_gpuml("train --model mlp --epochs 1 --quiet " + data() + " --out '" + run() + "'").exit_code, 0);
  fs::path out = dir_.path() / "missing" / "pred.csv";
  auto r = run_gpuml("predict --checkpoint '" + run() + "' --input '" +
                     (dir_.path() / "data" / "t10k-images-idx3-ubyte").string() + "' --output '" + out.string() + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace gpuml
