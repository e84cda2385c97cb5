// What the data-parallel tests (label dist) share: the largest difference between two runs'
// weights, and the rule for a launcher or plugin that is missing (a skip, but a failure under CI).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

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
