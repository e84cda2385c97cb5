// Type rules: the output shape and dtype of every op from its input types and attributes.
// Backend-free; the graph builder calls it for every node, eager dispatch for every call, so a
// shape mismatch is reported when the graph is built, never inside a kernel.
//
//   TensorType out = infer_type(OpId::matmul, {{{4, 3}, DType::f32}, {{3, 5}, DType::f32}}, {});
//   // out.shape == {4, 5}
//   std::vector<TensorType> both = infer_types(OpId::matmul_bgrad, {g (9, 4), x (9, 6)}, trans_a, axis 0);
//   // both: (4, 6) the weight gradient, (4,) the bias gradient
#pragma once

#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "ops/attrs.h"
#include "ops/op_table.h"

namespace gpuml {

struct TensorType {
  Shape shape;
  DType dtype = DType::f32;
  bool operator==(const TensorType&) const = default;
};

// The output type of a one-output op (Internal error for an op with several: use infer_types).
TensorType infer_type(OpId op, std::span<const TensorType> inputs, const Attrs& attrs);
// The types of every output of the op, in order (op_info(op).outputs of them).
std::vector<TensorType> infer_types(OpId op, std::span<const TensorType> inputs, const Attrs& attrs);

// Helpers shared by type rules and kernels so that every backend reads attributes the same way.

// layer_norm's kept statistics (outputs 1 and 2: mean, rstd): one per row, shaped like x's dims
// before attrs.axis; f32, or f64 for an f64 x (bf16 and f16 rows keep f32, as llm.c does).
TensorType layer_norm_stats_type(const TensorType& x, const Attrs& attrs);

// attention's sizes from q (B, H, Tq, D) and k (B, H, Tk, D), and the scale its scores use
// (attrs.scale, or 1/sqrt(D) when that is 0). The type rules check the shapes; kernels read these.
struct AttentionDims {
  int64_t batch, heads, tq, tk, d;
  double scale;
  int64_t rows() const { return batch * heads; }  // (b, h) pairs, one independent attention each
  // The first key query i may see is 0; the last is i + causal_shift() for a causal attention.
  int64_t causal_shift() const { return tk - tq; }
};
AttentionDims attention_dims(const Shape& q, const Shape& k, const Attrs& attrs);
// attention's output 1, the row log-sum-exp: (B, H, Tq), f32, or f64 for an f64 q.
TensorType attention_lse_type(const TensorType& q);

// cross_entropy's kept row statistic (output 1: lse): one per logits row, f32, or f64 for f64
// logits (bf16 and f16 rows keep f32).
TensorType cross_entropy_lse_type(const TensorType& logits);

// Per input dim: whether it is reduced (attrs.axes, empty = all).
std::vector<bool> reduced_axes(const Attrs& attrs, int ndim, const char* what);
// The normalised slice of every dim of `in`: start, step and output size (python semantics).
struct SliceDims {
  std::vector<int64_t> start, step, size;
};
SliceDims normalize_slice(const Shape& in, const Attrs& attrs);
// Output length of a convolution/pooling window sweep along one dim.
int64_t window_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation);
// Matmul dims after transposes: a is (..., M, K), b is (..., K, N).
struct MatmulDims {
  int64_t m, k, n;
  Shape batch;  // broadcast batch shape
};
MatmulDims matmul_dims(const Shape& a, const Shape& b, const Attrs& attrs);

}  // namespace gpuml
