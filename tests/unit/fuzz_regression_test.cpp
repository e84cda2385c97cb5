// Every fuzz seed and every input a fuzzer ever crashed on (tests/fuzz/corpus/<target>,
// tests/fuzz/regressions/<target>), read by the same entries the fuzz targets call: each must be
// read or refused with a gpuml::Error, in every build, sanitizers or not.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz_entries.h"

namespace gpuml::fuzz {
namespace {

namespace fs = std::filesystem;

class FuzzRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzRegression, EveryCorpusAndCrashInputIsReadOrRefused) {
  // A test executable moved away from the source tree (the GPU bundle) has no seeds to read.
  if (!fs::is_directory(GPUML_FUZZ_DIR)) GTEST_SKIP() << GPUML_FUZZ_DIR << " is not here (no source tree)";
  const FuzzEntry& entry = fuzz_entry(GetParam());
  int inputs = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    fs::path dir = fs::path(GPUML_FUZZ_DIR) / kind / entry.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& file : fs::directory_iterator(dir)) {
      std::ifstream in(file.path(), std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      try {
        entry.run(bytes.str());
      } catch (const std::exception& e) {
        ADD_FAILURE() << file.path() << ": " << e.what();
      }
      ++inputs;
    }
  }
  EXPECT_GT(inputs, 0) << "no seeds for " << entry.name << " in " << GPUML_FUZZ_DIR;
}

std::vector<std::string> entry_names() {
  std::vector<std::string> names;
  for (const FuzzEntry& e : fuzz_entries()) names.push_back(e.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Readers, FuzzRegression, ::testing::ValuesIn(entry_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace gpuml::fuzz
