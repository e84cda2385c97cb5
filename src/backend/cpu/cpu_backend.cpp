// The cpu backend: oneDNN for matmul, convolution and pooling; OpenMP loops for the rest.
// Ops without a kernel here fall back to ref (the planner places them).
#include "backend/cpu/cpu_backend.h"

#include <fmt/format.h>
#include <omp.h>

#include "backend/cpu/cpu_dnnl.h"
#include "core/system_info.h"

namespace gpuml {

namespace cpu {

bool has_avx2_fma() {
  static const bool yes = [] {
    const CpuFeatures f = detect_cpu_features();
    return f.avx2 && f.fma;
  }();
  return yes;
}

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
  return fmt::format("oneDNN {}.{}.{} (isa {}{}), OpenMP {} threads", v->major, v->minor, v->patch,
                     dnnl_->isa_name(), dnnl_->supports_bf16() ? ", bf16" : "", omp_get_max_threads());
}

}  // namespace cpu

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

}  // namespace gpuml
