// Shared helpers for end-to-end tests: a temporary directory, a small Fashion-MNIST subset
// written as IDX files, and running the gpuml binary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "test_paths.h"

namespace gpuml::testing {

// A fresh directory under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Fashion-MNIST: $GPUML_FASHION_MNIST, the bundle's subset, or the Debian package (test_paths.h).
bool have_fashion_mnist();
// The first `train` and `test` samples of Fashion-MNIST written as raw IDX files into `dir`.
void write_fashion_subset(const std::filesystem::path& dir, int64_t train, int64_t test);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};
CommandResult run_gpuml(const std::string& args);
// A /bin/sh command line, stdout and stderr captured.
CommandResult run_shell(const std::string& command);

// A path quoted for the shell command lines above ('...').
std::string q(const std::filesystem::path& p);
// A whole file as text ("" when it cannot be read).
std::string read_text(const std::filesystem::path& p);

}  // namespace gpuml::testing
