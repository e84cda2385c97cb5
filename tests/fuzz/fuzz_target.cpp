// One libFuzzer target per reader: compiled once per entry with GPUML_FUZZ_ENTRY="csv" etc.
// (tests/fuzz/CMakeLists.txt). A gpuml::Error is a clean refusal; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const gpuml::fuzz::FuzzEntry& entry = gpuml::fuzz::fuzz_entry(GPUML_FUZZ_ENTRY);
  entry.run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
