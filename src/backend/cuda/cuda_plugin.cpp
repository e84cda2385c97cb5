// The plugin's entry points (backend/plugin_loader.h). Everything that can be missing on a user's
// machine is checked here and reported as a reason, never a crash: the driver (libcuda.so.1,
// which the CUDA runtime opens lazily), a runtime/driver version mismatch, no device, and a
// cuBLASLt or cuDNN that is older, of another major version, or incomplete (cuDNN 9 opens its
// sub-libraries lazily: without this check a missing libcudnn_cnn would fail mid-training).
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/plugin_loader.h"

extern "C" int gpuml_plugin_abi_version() { return gpuml::kPluginAbiVersion; }

namespace {

// Where the loader found `symbol`'s library (for a reason that says which file to replace).
std::string library_of(const void* symbol) {
  Dl_info info{};
  return dladdr(symbol, &info) != 0 && info.dli_fname ? info.dli_fname : "?";
}

}  // namespace

// The CUDA libraries this plugin runs against, checked without a GPU: "" when usable, else the
// reason. Exported so that a test can call it on a machine without a driver.
extern "C" const char* gpuml_plugin_library_problem() {
  static std::string problem;
  problem.clear();
  const size_t cudnn = cudnnGetVersion();
  if (cudnn / 10000 != CUDNN_MAJOR) {
    problem = fmt::format("cuDNN {} found ({}), but the plugin was built for cuDNN {}.x", cudnn,
                          library_of(reinterpret_cast<void*>(&cudnnGetVersion)), CUDNN_MAJOR);
    return problem.c_str();
  }
  struct Sub {
    const char* name;
    cudnnStatus_t (*check)();
  };
  for (Sub s : {Sub{"graph", cudnnGraphVersionCheck}, Sub{"ops", cudnnOpsVersionCheck}, Sub{"cnn", cudnnCnnVersionCheck}}) {
    if (cudnnStatus_t st = s.check(); st != CUDNN_STATUS_SUCCESS) {
      problem = fmt::format("cuDNN {}'s {} sub-library (libcudnn_{}.so.{}) is missing or of another version: {} "
                            "(libcudnn.so at {}; its sub-libraries must sit beside it or on LD_LIBRARY_PATH)",
                            cudnn, s.name, s.name, CUDNN_MAJOR, cudnnGetErrorString(st),
                            library_of(reinterpret_cast<void*>(&cudnnGetVersion)));
      return problem.c_str();
    }
  }
  const size_t lt = cublasLtGetVersion();
  // Another major version only: an older minor that lacks a symbol fails dlopen (RTLD_NOW) already.
  if (lt / 10000 != CUBLAS_VER_MAJOR) {
    problem = fmt::format("cuBLASLt {} found ({}), but the plugin was built against cuBLAS {} ({}.x)", lt,
                          library_of(reinterpret_cast<void*>(&cublasLtGetVersion)), CUBLAS_VERSION, CUBLAS_VER_MAJOR);
    return problem.c_str();
  }
  return problem.c_str();
}

extern "C" void gpuml_plugin_load(gpuml::PluginLoad* out) {
  if (void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
    dlclose(driver);
  } else {
    out->reason = "no CUDA driver (libcuda.so.1 not found)";
    return;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) {
    out->reason = "no CUDA device";
    return;
  }
  if (e != cudaSuccess) {
    int driver = 0;
    cudaDriverGetVersion(&driver);
    out->reason = fmt::format("CUDA runtime {} cannot use the driver (driver supports CUDA {}.{}): {}", CUDART_VERSION,
                              driver / 1000, driver % 1000 / 10, cudaGetErrorString(e));
    return;
  }
  if (const char* problem = gpuml_plugin_library_problem(); *problem != '\0') {
    out->reason = problem;
    return;
  }
  for (int i = 0; i < count; ++i) out->backends.push_back(std::make_unique<gpuml::cuda::CudaBackend>(i));
}
