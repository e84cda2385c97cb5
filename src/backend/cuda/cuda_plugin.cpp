// The plugin's entry points (backend/plugin_loader.h). Everything that can be missing on a user's
// machine is checked here and reported as a reason, never a crash: the driver (libcuda.so.1,
// which the CUDA runtime opens lazily), a runtime/driver version mismatch, no device.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/plugin_loader.h"

extern "C" int gpuml_plugin_abi_version() { return gpuml::kPluginAbiVersion; }

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
  for (int i = 0; i < count; ++i) out->backends.push_back(std::make_unique<gpuml::cuda::CudaBackend>(i));
}
