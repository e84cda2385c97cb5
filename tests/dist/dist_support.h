// What the data-parallel tests (label dist) share: the largest difference between two runs'
// weights, mpirun and whether it can run, and the rule for a launcher or plugin that is missing (a
// skip, but a failure under CI).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "e2e_support.h"
#include "io/safetensors.h"

namespace gpuml::testing {

// The largest difference(a value, b's value) over every tensor of two safetensors files (a name
// or size missing from b is a test failure).
template <typename Difference>
double worst_difference(const std::filesystem::path& a, const std::filesystem::path& b, Difference difference) {
  SafetensorsFile fa = load_safetensors(a), fb = load_safetensors(b);
  double worst = 0;
  for (const auto& [name, ta] : fa.tensors) {
    EXPECT_TRUE(fb.contains(name)) << name;
    if (!fb.contains(name)) continue;
    std::vector<double> va = ta.to_doubles(), vb = fb.at(name).to_doubles();
    EXPECT_EQ(va.size(), vb.size()) << name;
    for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) worst = std::max(worst, difference(va[i], vb[i]));
  }
  return worst;
}

// The largest |a - b| over every weight of two safetensors files.
inline double max_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  return worst_difference(a, b, [](double x, double y) { return std::abs(x - y); });
}

// Whether rank 0's message names the collective it waited in when rank 1 stalled or died mid-run
// ("rank 0 of 2: all_reduce of gradients waited", `how` = "waited" or "failed after"): the step's
// gradients, or at an epoch's end the evaluation's sums (each rank evaluates its part).
inline bool names_training_collective(const std::string& output, const std::string& how) {
  for (const char* collective : {"all_reduce of gradients", "all_gather of evaluation sums"})
    if (output.find(std::string("rank 0 of 2: ") + collective + " " + how) != std::string::npos) return true;
  return false;
}

inline constexpr const char* kMpirun = "mpirun --allow-run-as-root --oversubscribe";

// mpirun, the MPI plugin and Fashion-MNIST are here.
inline bool mpi_ready(std::string* why) {
  if (run_shell("command -v mpirun").exit_code != 0) {
    *why = "mpirun not found (Debian: openmpi-bin)";
    return false;
  }
  if (!std::filesystem::exists(std::filesystem::path(GPUML_CLI_PATH).parent_path() / "libgpuml_mpi.so")) {
    *why = "the MPI plugin was not built (Debian: libopenmpi-dev)";
    return false;
  }
  if (!have_fashion_mnist()) {
    *why = "Fashion-MNIST not found";
    return false;
  }
  return true;
}

// A small convolutional net with BatchNorm2d for Fashion-MNIST (the presets have no BatchNorm),
// written as a model JSON file into `dir`; the --model argument for it. No bias before a
// BatchNorm: its gradient is zero up to rounding, which Adam turns into steps of lr in random
// directions, so two runs' biases would differ by about lr whatever the ranks do.
inline std::string write_batch_norm_model(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "conv_bn.json";
  std::ofstream(path) << R"({"input_shape": [1, 28, 28], "layers": [
    {"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": false},
    {"type": "BatchNorm2d", "num_features": 8}, {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Flatten"}, {"type": "Linear", "in_features": 1568, "out_features": 32, "bias": false},
    {"type": "BatchNorm1d", "num_features": 32}, {"type": "ReLU"},
    {"type": "Linear", "in_features": 32, "out_features": 10}]})";
  return path.string();
}

// The largest |a - b| / (1 + |b|) over every tensor of two safetensors files: running variances
// reach ~20 where weights stay below 1.
inline double max_relative_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  return worst_difference(a, b, [](double x, double y) { return std::abs(x - y) / (1 + std::abs(y)); });
}

// The --sync-batchnorm equivalence runs (write_batch_norm_model): 20 steps of SGD with momentum.
// Not Adam: in this model Adam turns rounding-level differences of near-zero gradients (the
// Linear weights of inputs that ReLU and pooling leave almost always 0) into steps of about lr,
// so that one process with --threads 2 against --threads 1 (the same sums in another order)
// already differs by 1.1e-4, which would hide a real error of that size; SGD keeps differences
// proportional to the gradients'.
inline constexpr const char* kSyncBatchNormOptimizer = "--optimizer sgd --lr 0.05 --momentum 0.9";
// Tolerance, relative (max_relative_difference), on weights and running statistics: the ranks
// add the same terms in another order (per-rank sums all-reduced; the statistics from a
// composite of ops where one process runs the batch_norm kernel). Measured: 7.7e-7 for 2 ranks
// x 64 against 1 x 128 (MPI and Gloo alike), and 6.5e-7 for one process at --threads 2 against
// --threads 1; the control without --sync-batchnorm differs by 0.4.
inline constexpr double kSyncBatchNormTolerance = 1e-5;

// A --sync-batchnorm run with --bucket-mb 0.0001: rank 0's all-reduce summary shows several
// buckets per step, none of them while backward ran, started after it (the graph's all_reduce_sums
// and the buckets never share the communicator; ModelRunner::train_step_data_parallel).
inline void expect_buckets_held_after_backward(const std::string& output, const std::string& communicator) {
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m,
                                std::regex("all-reduce \\(rank 0 of 2, " + communicator +
                                           "\\): (\\d+) buckets per step .*, (\\d+)% of it while backward ran; "
                                           "[^\\n]*started after backward")))
      << output;
  EXPECT_GE(std::stoi(m[1]), 3) << output;
  EXPECT_EQ(m[2], "0") << output;
}

}  // namespace gpuml::testing

// REQUIRE_READY(ready): ready(&why) says whether what the test needs is here; when not, the test
// is skipped with `why`, or fails under CI (CI=true), where everything must be installed.
#define REQUIRE_READY(ready)                                             \
  do {                                                                   \
    std::string why;                                                     \
    if (!(ready)(&why)) {                                                \
      if (std::getenv("CI") != nullptr) FAIL() << why << " (CI=true)";   \
      GTEST_SKIP() << why;                                               \
    }                                                                    \
  } while (0)
