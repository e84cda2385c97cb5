// The fixture the data_* tests share: a fresh directory per test (removed afterwards) and a
// random generator seeded afresh each run, the seed recorded and repeated on failure for replay.
//
//   class DataNpyTest : public gpuml::testing::SeededDirTest {};
//   TEST_F(DataNpyTest, X) { std::string path = write("a.npy", bytes); ... rng_() ... }
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "io_temp_dir.h"

namespace gpuml::testing {

// n bytes from mt19937(seed): reproducible record contents for the shard tests.
inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

class SeededDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}();
    rng_.seed(seed_);
    RecordProperty("seed", std::to_string(seed_));
  }
  void TearDown() override {
    if (HasFailure()) ADD_FAILURE() << "inputs came from seed " << seed_;
  }
  // Writes `bytes` to a file of the directory; returns its path.
  std::string write(const std::string& name, std::string_view bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  TempDir temp_;
  std::filesystem::path dir_ = temp_.path();
  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

}  // namespace gpuml::testing
