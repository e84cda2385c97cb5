// Scaled dot-product attention and its backward on the CPU, FlashAttention-style: keys are visited
// in tiles with an online softmax (a running row maximum and sum rescale what was accumulated), so
// a head needs O(T) memory, never the (Tq, Tk) score matrix. OpenMP runs over (batch x head x
// query tile) in the forward and over (batch x head) in the backward, whose dq accumulates over
// key tiles in one buffer per head (FlashAttention-2's loop order: key tiles outside).
//
// Tiles are packed into contiguous Compute<T> buffers (k transposed for the scores, so that the
// inner loops run along keys or along the head dim with unit stride and vectorise), which also
// reads strided q, k, v (the slices and permutes of a fused qkv projection) without a copy of
// the whole tensor, and converts bf16/f16 to f32 once per tile. In float (f32, bf16, f16) the
// tile products are small GEMMs through oneDNN's sgemm (q k^T, P v; in the backward P, dP, dV,
// dK, dQ); f64 runs the row loops (row_times_columns, axpy).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <oneapi/dnnl/dnnl.h>

#include "backend/cpu/cpu_activation.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"
#include "core/philox.h"

namespace gpuml::cpu {

namespace {

constexpr std::initializer_list<DType> kFloat{DType::f32, DType::f64, DType::bf16, DType::f16};

// The kernels three times: the build compiles for baseline x86-64 (SSE2: 4 floats per
// instruction, no FMA), while the softmax rows between a tile's products are what attention
// spends its time on besides them (oneDNN's sgemm picks AVX2/AVX-512 at run time). So the same
// source is compiled again for AVX2 + FMA and for AVX-512, the widest the CPU runs chosen at
// registration.
namespace portable {
#include "backend/cpu/cpu_attention_kernels.inc"
}  // namespace portable

GPUML_BEGIN_AVX2
namespace avx2 {
#include "backend/cpu/cpu_attention_kernels.inc"
}  // namespace avx2
GPUML_END_TARGET
GPUML_BEGIN_AVX512
namespace avx512 {
#include "backend/cpu/cpu_attention_kernels.inc"
}  // namespace avx512
GPUML_END_TARGET

}  // namespace

void register_attention_kernels(CpuBackend& backend) {
  // Strided q, k, v (and o, do) are read in place.
  if (has_avx512()) {
    backend.add_kernel(OpId::attention, avx512::attention_kernel, kFloat);
    backend.add_kernel(OpId::attention_backward, avx512::attention_backward_kernel, kFloat);
  } else if (has_avx2_fma()) {
    backend.add_kernel(OpId::attention, avx2::attention_kernel, kFloat);
    backend.add_kernel(OpId::attention_backward, avx2::attention_backward_kernel, kFloat);
  } else {
    backend.add_kernel(OpId::attention, portable::attention_kernel, kFloat);
    backend.add_kernel(OpId::attention_backward, portable::attention_backward_kernel, kFloat);
  }
}

}  // namespace gpuml::cpu
