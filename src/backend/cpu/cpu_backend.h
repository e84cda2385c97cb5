// The cpu backend's class, shared by its kernel files (not a public header: code above the backend
// layer reaches the backend through backend_registry().get("cpu")).
//
//   CpuBackend& cpu = cpu_backend_of(call);            // inside a kernel
//   cpu.dnnl().matmul_primitive(...);
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace gpuml::cpu {

class DnnlContext;  // cpu_dnnl.h: oneDNN engine, stream and primitive cache

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  ~CpuBackend() override;
  std::string_view name() const override { return "cpu"; }
  std::string description() const override;
  Device device() const override { return {}; }
  void* allocate(size_t bytes) override { return host_allocator().allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { host_allocator().deallocate(p, bytes); }

  DnnlContext& dnnl() const { return *dnnl_; }
  // Kernel files register through this (Backend::register_kernel is protected).
  void add_kernel(OpId op, KernelFn fn, std::initializer_list<DType> dtypes, bool strided_inputs = true) {
    register_kernel(op, fn, dtypes, strided_inputs);
  }

 private:
  std::unique_ptr<DnnlContext> dnnl_;
};

inline CpuBackend& cpu_backend_of(const KernelCall& call) { return static_cast<CpuBackend&>(call.backend); }

// One registration function per kernel family (one file each).
void register_matmul_kernels(CpuBackend& backend);      // cpu_matmul.cpp
void register_conv_pool_kernels(CpuBackend& backend);   // cpu_conv_pool.cpp
void register_elementwise_kernels(CpuBackend& backend); // cpu_elementwise.cpp
void register_reduce_kernels(CpuBackend& backend);      // cpu_reduce.cpp
void register_norm_loss_kernels(CpuBackend& backend);   // cpu_norm_loss.cpp
void register_random_gather_kernels(CpuBackend& backend);  // cpu_random_gather.cpp
void register_movement_kernels(CpuBackend& backend);    // cpu_movement.cpp
void register_optim_kernels(CpuBackend& backend);       // cpu_optim.cpp
void register_attention_kernels(CpuBackend& backend);   // cpu_attention.cpp

// Whether this CPU and its OS run AVX2 and FMA (core/system_info.h), for the kernels compiled a
// second time for them (the build targets baseline x86-64); asked once.
bool has_avx2_fma();
// Whether they run AVX-512 (f, dq, bw, vl) too, for the kernels compiled a third time for it:
// 16 floats an instruction. GPUML_CPU_ISA=avx2 (or baseline) keeps a run to the narrower copies.
bool has_avx512();

// The targets of those copies, around their definitions. GCC keeps 256-bit vectors under
// AVX-512 unless told to prefer 512: elementwise loops measured 1.3-1.6x faster with them
// (bench/elementwise_bench.cpp).
#define GPUML_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define GPUML_BEGIN_AVX512 \
  _Pragma("GCC push_options") \
      _Pragma("GCC target(\"avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512\")")
#define GPUML_END_TARGET _Pragma("GCC pop_options")
// fn(args) from the widest of the three copies (namespaces portable, avx2, avx512) this CPU runs.
#define GPUML_ISA_CALL(fn, ...)                                  \
  (::gpuml::cpu::has_avx512()     ? avx512::fn(__VA_ARGS__)      \
   : ::gpuml::cpu::has_avx2_fma() ? avx2::fn(__VA_ARGS__)        \
                                  : portable::fn(__VA_ARGS__))

}  // namespace gpuml::cpu
