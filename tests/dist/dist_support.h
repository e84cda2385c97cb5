// What the data-parallel tests (label dist) share: the largest difference between two runs'
// weights, mpirun and whether it can run, and the rule for a launcher or plugin that is missing (a
// skip, but a failure under CI).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "e2e_support.h"
#include "io/safetensors.h"

namespace gpuml::testing {

// The largest |a - b| over every weight of two safetensors files (a name or size missing from b
// is a test failure).
inline double max_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  SafetensorsFile fa = load_safetensors(a), fb = load_safetensors(b);
  double worst = 0;
  for (const auto& [name, ta] : fa.tensors) {
    EXPECT_TRUE(fb.contains(name)) << name;
    if (!fb.contains(name)) continue;
    std::vector<double> va = ta.to_doubles(), vb = fb.at(name).to_doubles();
    EXPECT_EQ(va.size(), vb.size()) << name;
    for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  }
  return worst;
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
