#include "backend/cpu/cpu_backend.h"

namespace gpuml::cpu {

void register_reduce_kernels(CpuBackend& backend) {}

}  // namespace gpuml::cpu
