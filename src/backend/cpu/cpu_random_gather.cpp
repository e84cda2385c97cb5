#include "backend/cpu/cpu_backend.h"

namespace gpuml::cpu {

void register_random_gather_kernels(CpuBackend& backend) {}

}  // namespace gpuml::cpu
