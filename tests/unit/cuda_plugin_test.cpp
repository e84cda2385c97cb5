// The CUDA plugin seen from a machine with or without a GPU: the executable links no CUDA
// library, the loader turns every failure into a reason, and the registry reports it.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/communicator.h"
#include "backend/plugin_loader.h"
#include "core/error.h"
#include "graph/planner.h"
#include "test_paths.h"
#include "train/callbacks.h"

namespace gpuml {
namespace {

std::string command_output(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// ldd lists every library the binary pulls in, transitively (libgpuml.so's too).
TEST(CudaPlugin, GpumlExecutableLinksNoCudaLibrary) {
  const std::string cli = testing::gpuml_cli_path();
  std::string deps = command_output(std::string("ldd '") + cli + "' 2>&1");
  ASSERT_NE(deps.find("libgpuml.so"), std::string::npos) << deps;  // the output is what we think it is
  for (const char* lib : {"libcuda.so", "libcudart", "libcublas", "libcudnn"})
    EXPECT_EQ(deps.find(lib), std::string::npos) << "gpuml depends on " << lib << ":\n" << deps;
}

TEST(CudaPlugin, MissingFileGivesAReasonNamingIt) {
  PluginLoad load = load_backend_plugin("/nonexistent/dir/libgpuml_cuda.so");
  EXPECT_TRUE(load.backends.empty());
  EXPECT_NE(load.reason.find("cannot load /nonexistent/dir/libgpuml_cuda.so"), std::string::npos) << load.reason;
}

// A shared library without the entry points (the C math library) is refused, not called.
TEST(CudaPlugin, LibraryWithoutEntryPointsIsNotAPlugin) {
  PluginLoad load = load_backend_plugin("libm.so.6");
  EXPECT_TRUE(load.backends.empty());
  EXPECT_NE(load.reason.find("is not a gpuml plugin"), std::string::npos) << load.reason;
}

// The ABI number moves with every part it folds in (a layout change of Attrs, a new op, a bumped
// interface revision), so a plugin built from other headers is refused rather than called.
TEST(CudaPlugin, AbiNumberChangesWithEachPart) {
  const int base = plugin_abi_fingerprint({2, 120, 512, 8, 96});
  EXPECT_NE(base, plugin_abi_fingerprint({3, 120, 512, 8, 96}));  // interface revision
  EXPECT_NE(base, plugin_abi_fingerprint({2, 121, 512, 8, 96}));  // one more op
  EXPECT_NE(base, plugin_abi_fingerprint({2, 120, 520, 8, 96}));  // Attrs grew
  EXPECT_NE(base, plugin_abi_fingerprint({2, 120, 512, 8, 104}));  // KernelCall grew
  EXPECT_GT(kPluginAbiVersion, 0);
}

TEST(CudaPlugin, PluginPathVariableIsSearchedFirst) {
  ASSERT_EQ(setenv("GPUML_PLUGIN_PATH", "/tmp/gpuml-a:/tmp/gpuml-b", 1), 0);
  std::vector<std::string> paths = plugin_search_paths();
  unsetenv("GPUML_PLUGIN_PATH");
  ASSERT_GE(paths.size(), 3u);
  EXPECT_EQ(paths[0], "/tmp/gpuml-a");
  EXPECT_EQ(paths[1], "/tmp/gpuml-b");
}

// The real plugin, opened directly (past the loader's own driver check): on a machine without a
// driver or GPU it must return the reason, not crash; with a GPU it must return a backend.
TEST(CudaPlugin, BuiltPluginLoadsOrSaysWhyNot) {
  const std::string plugin = testing::cuda_plugin_path();
  if (plugin.empty()) GTEST_SKIP() << "this build has no CUDA plugin";
  PluginLoad load = load_backend_plugin(plugin);
  if (load.backends.empty()) {
    bool known = load.reason.find("no CUDA driver (libcuda.so.1 not found)") != std::string::npos ||
                 load.reason.find("no CUDA device") != std::string::npos ||
                 load.reason.find("cannot use the driver") != std::string::npos ||
                 // the bundle on a machine without the CUDA toolkit (the GPU machine provides it)
                 (load.reason.find("cannot load ") != std::string::npos &&
                  (load.reason.find("libcudart") != std::string::npos || load.reason.find("libcublas") != std::string::npos ||
                   load.reason.find("libcudnn") != std::string::npos));
    EXPECT_TRUE(known) << load.reason;
  } else {
    EXPECT_EQ(load.backends[0]->name(), "cuda");
    EXPECT_EQ(load.backends[0]->device().type, DeviceType::cuda);
    EXPECT_GT(load.backends[0]->supported_dtypes(OpId::matmul).size(), 0u);
  }
}

// cuDNN's sub-libraries and cuBLASLt's version are checked when the plugin loads (no GPU needed):
// on a machine with the toolkit they pass; a partial cuDNN would be a load-time reason.
TEST(CudaPlugin, PluginChecksItsCudaLibrariesWithoutAGpu) {
  const std::string plugin = testing::cuda_plugin_path();
  if (plugin.empty()) GTEST_SKIP() << "this build has no CUDA plugin";
  void* handle = dlopen(plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) GTEST_SKIP() << "the CUDA libraries are not on this machine: " << dlerror();
  auto check = reinterpret_cast<const char* (*)()>(dlsym(handle, "gpuml_plugin_library_problem"));
  ASSERT_NE(check, nullptr);
  EXPECT_STREQ(check(), "");
  // No dlclose: the CUDA runtime does not like being unmapped.
}

// NCCL's entry lives in the CUDA plugin, under the communicator ABI: present, of this build's ABI,
// and refusing a backend that is not the plugin's own CUDA backend with a reason (no GPU needed).
TEST(CudaPlugin, NcclEntryIsThereAndRefusesAHostBackend) {
  const std::string plugin = testing::cuda_plugin_path();
  if (plugin.empty()) GTEST_SKIP() << "this build has no CUDA plugin";
  void* handle = dlopen(plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) GTEST_SKIP() << "the CUDA libraries are not on this machine: " << dlerror();
  auto abi = reinterpret_cast<CommPluginAbiVersionFn>(dlsym(handle, kCommPluginAbiVersionSymbol));
  auto open = reinterpret_cast<DeviceCommOpenFn>(dlsym(handle, kDeviceCommOpenSymbol));
  ASSERT_NE(abi, nullptr);
  ASSERT_NE(open, nullptr);
  EXPECT_EQ(abi(), kCommunicatorAbiVersion);
  DeviceCommunicatorOpen request;
  request.device_backend = &backend_registry().reference();
  open(&request);
  EXPECT_EQ(request.communicator, nullptr);
  EXPECT_NE(request.reason.find("NCCL needs a CUDA backend of this plugin, not ref"), std::string::npos)
      << request.reason;
}

TEST(CudaPlugin, RegistryRecordsWhatHappened) {
  const std::string& status = backend_registry().cuda_status();
  bool has_gpu = backend_registry().find("cuda") != nullptr;
  if (has_gpu) EXPECT_EQ(status.rfind("loaded from ", 0), 0u) << status;
  else EXPECT_EQ(status.rfind("not used: ", 0), 0u) << status;
#ifndef GPUML_CUDA_PLUGIN_PATH
  EXPECT_NE(status.find("plugin not built"), std::string::npos) << status;
#endif
}

TEST(CudaPlugin, DeviceCudaWithoutGpuNamesTheReason) {
  if (backend_registry().find("cuda")) GTEST_SKIP() << "a GPU is present";
  try {
    plan_options_for_device("cuda");
    ADD_FAILURE() << "--device cuda succeeded without a CUDA backend";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(e.message().find(backend_registry().cuda_status()), std::string::npos) << e.message();
  }
  // auto falls back to the CPU without complaint.
  PlanOptions p = plan_options_for_device("auto");
  ASSERT_FALSE(p.backends.empty());
  EXPECT_EQ(p.backends[0]->name(), "cpu");
}

}  // namespace
}  // namespace gpuml
