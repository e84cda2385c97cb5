// Where the tests find the gpuml binary, the CUDA plugin and Fashion-MNIST, so that the test
// executables also run from the GPU bundle (tools/gpu-bundle.sh: bin/, lib/, data/) with the
// build tree gone. Each is, in order: an environment variable, the bundle's place relative to the
// running test executable, the build tree's path that CMake compiled in.
//
//   std::string cli = gpuml::testing::gpuml_cli_path();   // GPUML_CLI, <exe dir>/gpuml, build tree
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace gpuml::testing {

inline std::filesystem::path test_executable_dir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

// `fallback` is the build tree's path (may be empty); `beside` is relative to the executable.
inline std::string located_path(const char* env_name, const std::filesystem::path& beside, const char* fallback) {
  if (const char* env = std::getenv(env_name); env && *env) return env;
  std::error_code ec;
  std::filesystem::path dir = test_executable_dir();
  if (!dir.empty() && std::filesystem::exists(dir / beside, ec)) return (dir / beside).lexically_normal().string();
  return fallback ? fallback : "";
}

#ifdef GPUML_CLI_PATH
// The gpuml binary: $GPUML_CLI, gpuml beside the test executable (the bundle's bin/), the build's.
inline std::string gpuml_cli_path() { return located_path("GPUML_CLI", "gpuml", GPUML_CLI_PATH); }
#endif

// The CUDA plugin the plugin tests open directly: $GPUML_CUDA_PLUGIN, ../lib/libgpuml_cuda.so
// beside the test executable (the bundle), the build's (empty when this build has no plugin).
inline std::string cuda_plugin_path() {
#ifdef GPUML_CUDA_PLUGIN_PATH
  return located_path("GPUML_CUDA_PLUGIN", "../lib/libgpuml_cuda.so", GPUML_CUDA_PLUGIN_PATH);
#else
  return located_path("GPUML_CUDA_PLUGIN", "../lib/libgpuml_cuda.so", nullptr);
#endif
}

// Fashion-MNIST's IDX files: $GPUML_FASHION_MNIST, ../data/fashion-mnist beside the test
// executable (the bundle's subset), the Debian package's folder.
inline std::string fashion_mnist_dir() {
  return located_path("GPUML_FASHION_MNIST", "../data/fashion-mnist", "/usr/share/datasets/fashion-mnist");
}

}  // namespace gpuml::testing
