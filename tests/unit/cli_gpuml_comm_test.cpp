// GPUML_COMM as the user meets it on the command line: a value it does not take, and NCCL asked
// for a run on the host, each end `gpuml train` with a message that names the variable, a non-zero
// exit and no run directory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "io_temp_dir.h"
#include "test_paths.h"

namespace gpuml {
namespace {

struct TrainResult {
  int exit_code = -1;
  std::string output;
};

TrainResult train_on_host_with(const std::string& gpuml_comm, const testing::TempDir& dir) {
  const std::string model = (dir.path() / "model.json").string(), csv = (dir.path() / "d.csv").string();
  std::ofstream(model) << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 2}]})";
  std::ofstream(csv) << "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n";
  std::string command = "GPUML_COMM='" + gpuml_comm + "' '";
  command += testing::gpuml_cli_path();
  command += "' train --quiet --device cpu --epochs 1 --batch-size 2 --data '" + csv + "' --model '" + model +
             "' --out '" + (dir.path() / "run").string() + "' 2>&1";
  TrainResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) result.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(CliGpumlComm, AValueItDoesNotTakeIsRefusedNamingTheValues) {
  testing::TempDir dir;
  TrainResult r = train_on_host_with("gloo", dir);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("GPUML_COMM=gloo: it takes auto"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "run"));
}

TEST(CliGpumlComm, NcclForARunOnTheHostIsRefusedSayingWhy) {
  testing::TempDir dir;
  TrainResult r = train_on_host_with("nccl", dir);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("GPUML_COMM=nccl: NCCL carries gradients in GPU memory"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "run"));
}

// The same run with GPUML_COMM=host (or auto) trains: the refusals above are GPUML_COMM's.
TEST(CliGpumlComm, HostTrainsAsBefore) {
  testing::TempDir dir;
  TrainResult r = train_on_host_with("host", dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "run"));
}

}  // namespace
}  // namespace gpuml
