#include "backend/cpu/cpu_backend.h"

namespace gpuml::cpu {

void register_norm_loss_kernels(CpuBackend& backend) {}

}  // namespace gpuml::cpu
