// The readers of user data, each behind one function that takes a file's bytes: what the fuzz
// targets (tests/fuzz/fuzz_target.cpp, built with -DGPUML_FUZZ=ON) and the regression test
// (tests/unit/fuzz_regression_test.cpp, every build) both call.
//
//   for (const FuzzEntry& e : fuzz_entries())
//     e.run(bytes);   // returns after reading, or after the reader threw a gpuml::Error
//
// Each entry writes the bytes where the CLI would find them (a file with the right extension, a
// dataset directory) and calls the same function the CLI calls. A gpuml::Error is the reader
// refusing bad input, which is success; anything else (another exception, a crash, a sanitizer
// report, a hang) is a bug.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gpuml::fuzz {

struct FuzzEntry {
  const char* name;  // also the folder of its seeds (corpus/<name>) and crashes (regressions/<name>)
  void (*run)(std::string_view bytes);
};

const std::vector<FuzzEntry>& fuzz_entries();
const FuzzEntry& fuzz_entry(std::string_view name);  // aborts on an unknown name

}  // namespace gpuml::fuzz
