// The cpu backend: oneDNN for matmul, convolution and pooling; OpenMP loops for the rest.
// Ops without a kernel here fall back to ref (the planner places them).
#include "backend/cpu/cpu_backend.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cpu/cpu_dnnl.h"
#include "core/error.h"
#include "core/system_info.h"

namespace gpuml {

namespace cpu {

namespace {
// The widest copy a run may use: the CPU's, narrowed by GPUML_CPU_ISA (baseline, avx2, avx512).
int isa_level() {
  static const int level = [] {
    const CpuFeatures f = detect_cpu_features();
    int cpu = f.avx2 && f.fma ? (f.avx512_core ? 2 : 1) : 0;
    const char* cap = std::getenv("GPUML_CPU_ISA");
    if (cap == nullptr || *cap == '\0') return cpu;
    const std::string name(cap);
    const int limit = name == "baseline" ? 0 : name == "avx2" ? 1 : name == "avx512" ? 2 : -1;
    GPUML_CHECK(limit >= 0, "GPUML_CPU_ISA='{}': expected baseline, avx2 or avx512", name);
    return std::min(cpu, limit);
  }();
  return level;
}
}  // namespace

bool has_avx2_fma() { return isa_level() >= 1; }
bool has_avx512() { return isa_level() >= 2; }

CpuBackend::CpuBackend() : dnnl_(std::make_unique<DnnlContext>()) {
  register_matmul_kernels(*this);
  register_conv_pool_kernels(*this);
  register_elementwise_kernels(*this);
  register_reduce_kernels(*this);
  register_norm_loss_kernels(*this);
  register_random_gather_kernels(*this);
  register_movement_kernels(*this);
  register_optim_kernels(*this);
  register_attention_kernels(*this);
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::description() const {
  const dnnl_version_t* v = dnnl_version();
  static constexpr const char* kIsaNames[] = {"baseline", "avx2", "avx512"};
  return fmt::format("oneDNN {}.{}.{} (isa {}{}), own loops {}, OpenMP {} threads", v->major, v->minor, v->patch,
                     dnnl_->isa_name(), dnnl_->supports_bf16() ? ", bf16" : "", kIsaNames[isa_level()],
                     omp_get_max_threads());
}

}  // namespace cpu

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

}  // namespace gpuml
