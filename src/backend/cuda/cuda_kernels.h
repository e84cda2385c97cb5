// The CUDA kernels' launchers, in plain C++ that both nvcc and the host compiler read: no gpuml
// core header (nvcc cannot parse fmt), only POD arguments. The host side (cuda_register_*.cpp)
// turns a KernelCall into these; the .cu files hold the kernels.
//
//   StridedView x = strided_view_of(call.inputs[0], out_layout);   // cuda_glue.h
//   launch_unary(UnaryOp::relu, ElemType::f32, x, out_ptr, layout, /*gelu_tanh*/ false, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gpuml::cuda {

inline constexpr int kMaxDims = 8;

// Same order as gpuml::DType (static_assert'ed in cuda_glue.h).
enum class ElemType : uint8_t { f32, f64, bf16, f16, i32, i64, u8, boolean };

// The logical (row-major) index space a kernel walks: the output's shape.
struct Layout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t numel = 1;
};

// An operand read (or written) at element strides over a Layout; stride 0 broadcasts.
struct StridedView {
  void* data = nullptr;  // element 0 of the view (offset applied)
  int64_t strides[kMaxDims] = {};
};

enum class UnaryOp : uint8_t { neg, abs, sign, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, gelu };
// relu_backward(y, dy): dy where y > 0, else 0 (a NaN y counts as not > 0).
enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum, relu_backward };
enum class CompareOp : uint8_t { eq, ne, lt, le, gt, ge };

// --- cuda_elementwise.cu -----------------------------------------------------------------------
void launch_unary(UnaryOp op, ElemType t, const StridedView& x, void* out, const Layout& layout, bool gelu_tanh,
                  cudaStream_t stream);
void launch_binary(BinaryOp op, ElemType t, const StridedView& a, const StridedView& b, void* out,
                   const Layout& layout, cudaStream_t stream);
void launch_compare(CompareOp op, ElemType t, const StridedView& a, const StridedView& b, bool* out,
                    const Layout& layout, cudaStream_t stream);
// where(cond (bool), a, b) -> a where cond else b
void launch_where(ElemType t, const StridedView& cond, const StridedView& a, const StridedView& b, void* out,
                  const Layout& layout, cudaStream_t stream);
void launch_cast(ElemType from, ElemType to, const StridedView& x, void* out, const Layout& layout,
                 cudaStream_t stream);
// Copies a strided view into another strided view of the same layout: the one movement kernel
// (copy, reshape, permute, slice, broadcast_to, concat blocks, pad interiors).
void launch_strided_copy(int elem_bytes, const StridedView& src, const StridedView& dst, const Layout& layout,
                         cudaStream_t stream);
// out[i] = start + i * step over a contiguous range (fill: step 0).
void launch_arange(ElemType t, void* out, int64_t n, double start, double step, cudaStream_t stream);
// In place on a contiguous (N, C, plane) tensor: y = act(y + bias[c]), act 0 none, 1 relu, 2 gelu
// (the epilogue of conv2d_bias_act).
void launch_channel_bias_act(ElemType t, void* y, const void* bias, int64_t n, int64_t channels, int64_t plane,
                             int activation, bool gelu_tanh, cudaStream_t stream);
// The bit mask of y > 0 over a contiguous (rows, cols) y, as cuBLASLt's DRELU epilogue reads it:
// bit (i, j) is bit j + i * ld_bits of the mask, LSB first in each byte (ld_bits a multiple of
// 128). The matmul file checks that layout against the library once before trusting it.
void launch_relu_mask(ElemType t, const void* y, void* mask, int64_t rows, int64_t cols, int64_t ld_bits,
                      cudaStream_t stream);
// dx = dy * relu'(x) or gelu'(x); x and dy strided over the output layout.
void launch_gelu_backward(ElemType t, const StridedView& x, const StridedView& dy, void* dx, const Layout& layout,
                          bool gelu_tanh, cudaStream_t stream);

// --- cuda_reduce.cu ----------------------------------------------------------------------------
// A reduction over a (outer, reduce, inner) split of a contiguous input: out[o, i] over r.
// Callers make the input contiguous and move reduced axes next to each other (permute + copy).
enum class ReduceOp : uint8_t { sum, mean, max, argmax };
void launch_reduce(ReduceOp op, ElemType t, const void* in, void* out, int64_t outer, int64_t reduce, int64_t inner,
                   cudaStream_t stream);
// softmax / log_softmax over the middle dim of a contiguous (outer, n, inner) tensor.
void launch_softmax(ElemType t, bool log, const void* in, void* out, int64_t outer, int64_t n, int64_t inner,
                    cudaStream_t stream);

// --- cuda_loss_norm.cu -------------------------------------------------------------------------
// cross_entropy(logits (N, C) contiguous, labels (N,)) -> (loss (), lse (N,) each row's
// log-sum-exp, f32 (f64 for f64 logits)). bad_label (device int64, set to -1 by the caller) is
// lowered to the first row with an out-of-range label. row_scratch: 2 * N device doubles (each
// row's loss and whether it counts), one block per row, then a fixed-order mean.
void launch_cross_entropy(ElemType t, const void* logits, const void* labels, bool labels_i64, void* loss, void* lse,
                          int64_t n, int64_t c, int64_t ignore_index, int64_t* bad_label, double* row_scratch,
                          cudaStream_t stream);
// (logits (N, C), labels (N,), dloss (), lse (N,) as the forward kept it) -> dlogits (N, C). dloss
// has its own element type (bf16 logits with an f32 loss scale).
void launch_cross_entropy_backward(ElemType t, const void* logits, const void* labels, bool labels_i64,
                                   const void* dloss, ElemType dloss_type, const void* lse, void* dlogits, int64_t n,
                                   int64_t c, int64_t ignore_index, cudaStream_t stream);
// layer_norm over the last `d` elements of each of `rows` contiguous rows; w, b (d,). mean and
// rstd (rows,) are the kept statistics, f32 (f64 for f64 x): the forward writes them, the
// backward reads them.
// wt: w's and b's type, t's or f32 beside a bf16/f16 x (dw, db have it too).
void launch_layer_norm(ElemType t, ElemType wt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t d, double eps, cudaStream_t stream);
// The backward writes dx and the parameters' gradients dw, db (d,); `parts` is scratch of
// layer_norm_param_parts(rows, d) doubles.
void launch_layer_norm_backward(ElemType t, ElemType wt, const void* x, const void* w, const void* dy,
                                const void* mean, const void* rstd, void* dx, void* dw, void* db, double* parts,
                                int64_t rows, int64_t d, cudaStream_t stream);
int64_t layer_norm_param_parts(int64_t rows, int64_t d);
// batch_norm over x (N, C, S) contiguous; stats per channel (batch or running).
void launch_batch_norm(ElemType t, const void* x, const void* w, const void* b, const void* running_mean,
                       const void* running_var, void* y, int64_t n, int64_t c, int64_t s, bool training, double eps,
                       cudaStream_t stream);
void launch_batch_norm_backward(ElemType t, const void* x, const void* w, const void* dy, void* dx, int64_t n,
                                int64_t c, int64_t s, double eps, cudaStream_t stream);

// --- cuda_pool_gather.cu -----------------------------------------------------------------------
struct PoolParams {
  int64_t n, c, h, w, oh, ow;  // x (N, C, H, W), y (N, C, OH, OW)
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
};
void launch_max_pool(ElemType t, const void* x, void* y, const PoolParams& p, cudaStream_t stream);
void launch_max_pool_backward(ElemType t, const void* x, const void* dy, void* dx, const PoolParams& p,
                              cudaStream_t stream);
void launch_avg_pool(ElemType t, const void* x, void* y, const PoolParams& p, cudaStream_t stream);
void launch_avg_pool_backward(ElemType t, const void* dy, void* dx, const PoolParams& p, cudaStream_t stream);
// embedding: out (n, d) = weight[idx[i]]; bad_index as in cross_entropy.
void launch_embedding(ElemType t, const void* weight, const void* idx, bool idx_i64, void* out, int64_t n,
                      int64_t vocab, int64_t d, int64_t* bad_index, cudaStream_t stream);
// After a kernel lowered flag[0] to the first bad row (or left it -1): flag[1] = idx[flag[0]].
void launch_record_bad_value(const void* idx, bool idx_i64, int64_t* flag, cudaStream_t stream);
// embedding_backward: dw (vocab, d) zeroed, then dw[idx[i]] += dy[i] (atomics; f32 or f64).
// deterministic: rows are added in index order (no atomics), for --deterministic.
void launch_embedding_backward(ElemType t, const void* idx, bool idx_i64, const void* dy, void* dw, int64_t n,
                               int64_t vocab, int64_t d, bool deterministic, cudaStream_t stream);
// Philox draws (core/philox.h): the same numbers as the CPU backends. The offset drawn at is
// `offset` plus, when offset_slot is not null, the device uint64 there (read when the kernel runs:
// captured graphs replay with a new offset).
void launch_dropout(ElemType t, const StridedView& x, void* out, const Layout& layout, double p, uint64_t seed,
                    uint64_t offset, const uint64_t* offset_slot, cudaStream_t stream);
void launch_random(ElemType t, bool normal, void* out, int64_t n, double a, double b, uint64_t seed, uint64_t offset,
                   const uint64_t* offset_slot, cudaStream_t stream);

// --- cuda_attention.cu -------------------------------------------------------------------------
// Scaled dot-product attention over contiguous q (BH, Tq, d), k and v (BH, Tk, d), f32 or bf16
// (f32 arithmetic), d <= kAttentionMaxHeadDim; lse (BH, Tq) f32. Causal: query i sees keys up to
// i + Tk - Tq. Dropout as the Philox draws below: probability (bh, i, j) is element
// (bh Tq + i) Tk + j of (seed, offset + *offset_slot).
inline constexpr int64_t kAttentionMaxHeadDim = 128;
inline constexpr int64_t kAttentionQueryTile = 16;  // query rows per block (the grid's y: tiles)
inline constexpr int64_t kAttentionKeyTile = 32;    // keys per tile, one per lane
struct AttentionParams {
  int64_t batch_heads = 0, tq = 0, tk = 0, d = 0;
  float scale = 1.0f;  // scores = q k^T * scale
  bool causal = false;
  bool dropout = false;     // training and p > 0
  double p = 0.0;           // probability of dropping
  float keep_scale = 1.0f;  // 1 / (1 - p)
  uint64_t seed = 0, offset = 0;
  const uint64_t* offset_slot = nullptr;  // device uint64 added to offset when the kernel runs, or null
};
void launch_attention(ElemType t, const void* q, const void* k, const void* v, void* o, float* lse,
                      const AttentionParams& p, cudaStream_t stream);
// (q, k, v, o, do, lse) -> (dq, dk, dv); delta: BH * Tq device floats of scratch (D_i = do_i . o_i).
void launch_attention_backward(ElemType t, const void* q, const void* k, const void* v, const void* o,
                               const void* dout, const float* lse, float* delta, void* dq, void* dk, void* dv,
                               const AttentionParams& p, cudaStream_t stream);

// --- cuda_optim.cu -----------------------------------------------------------------------------
struct OptimParams {
  double momentum, weight_decay, beta1, beta2, eps;
  bool nesterov, decoupled_weight_decay;
};
// state (rows, p) f32, grad (p,), hyper (3,) = [lr, 1-beta1^t, 1-beta2^t], decay (p,) each
// element's weight-decay multiplier, on the device.
// scaled: hyper has a fourth element, the gradient's multiplier (global-norm clipping).
void launch_sgd_update(const float* state, const float* grad, const float* hyper, bool scaled, const float* decay,
                       float* out, int64_t rows, int64_t p, const OptimParams& o, cudaStream_t stream);
void launch_adam_update(const float* state, const float* grad, const float* hyper, bool scaled, const float* decay,
                        float* out, int64_t p, const OptimParams& o, cudaStream_t stream);

// --- cuda_scale.cu -------------------------------------------------------------------------------
// values (n,) f32 *= factor in place: the average of a collective on device memory (NCCL) is a
// sum, then this (backend/communicator.h).
void launch_scale_f32(float* values, int64_t n, float factor, cudaStream_t stream);

}  // namespace gpuml::cuda
