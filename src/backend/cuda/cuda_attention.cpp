// attention and attention_backward on CUDA: the KernelCall side of cuda_attention.cu. The kernels
// read contiguous (B, H, T, D) inputs (the planner copies views), f32 or bf16 with f32 lse, and
// head dims up to 128: a shape limit, so the planner places any other step elsewhere (cpu) as a
// decision it shows, not a fallback inside the kernel.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"

namespace gpuml::cuda {

namespace {

constexpr std::initializer_list<DType> kAttentionTypes = {DType::f32, DType::bf16};

AttentionParams params_of(const KernelCall& c) {
  const AttentionDims dims = attention_dims(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs);
  AttentionParams p;
  p.batch_heads = dims.rows();
  p.tq = dims.tq;
  p.tk = dims.tk;
  p.d = dims.d;
  p.scale = static_cast<float>(dims.scale);
  p.causal = c.attrs.causal;
  p.dropout = c.attrs.training && c.attrs.p > 0.0;
  p.p = c.attrs.p;
  p.keep_scale = p.dropout ? static_cast<float>(1.0 / (1.0 - c.attrs.p)) : 1.0f;
  p.seed = c.attrs.seed;
  p.offset = c.attrs.offset;
  p.offset_slot = static_cast<const uint64_t*>(c.offset_slot);
  return p;
}

// Head dims 1..128; the grid's y dimension (query or key tiles) within CUDA's 65535.
bool attention_fits(const OpQuery& query) {
  const Shape &q = query.inputs[0].shape, &k = query.inputs[1].shape;
  if (q.size() != 4 || k.size() != 4) return false;
  const int64_t most_tiles = 65535;
  return q[3] >= 1 && q[3] <= kAttentionMaxHeadDim && q[0] * q[1] <= (int64_t{1} << 31) - 1 &&
         (q[2] + kAttentionQueryTile - 1) / kAttentionQueryTile <= most_tiles &&
         (k[2] + kAttentionKeyTile - 1) / kAttentionKeyTile <= most_tiles;
}

void attention_kernel(const KernelCall& c) {  // (q, k, v) -> (o, lse)
  const Tensor &q = c.inputs[0], &k = c.inputs[1], &v = c.inputs[2];
  launch("attention", [&] {
    launch_attention(elem_type(q.dtype()), q.raw_data(), k.raw_data(), v.raw_data(), c.output.raw_data(),
                     static_cast<float*>(c.extra_outputs[0].raw_data()), params_of(c), cuda_backend_of(c).stream_of(c));
  });
}

void attention_backward_kernel(const KernelCall& c) {  // (q, k, v, o, do, lse) -> (dq, dk, dv)
  const Tensor& q = c.inputs[0];
  const AttentionParams p = params_of(c);
  // D_i = do_i . o_i per query row, freed in stream order after the kernels.
  Tensor delta = Tensor::empty({std::max<int64_t>(p.batch_heads * p.tq, 1)}, DType::f32, c.backend);
  launch("attention_backward", [&] {
    launch_attention_backward(elem_type(q.dtype()), q.raw_data(), c.inputs[1].raw_data(), c.inputs[2].raw_data(),
                              c.inputs[3].raw_data(), c.inputs[4].raw_data(),
                              static_cast<const float*>(c.inputs[5].raw_data()), static_cast<float*>(delta.raw_data()),
                              c.output.raw_data(), c.extra_outputs[0].raw_data(), c.extra_outputs[1].raw_data(), p,
                              cuda_backend_of(c).stream_of(c));
  });
}

}  // namespace

void register_attention_kernels(CudaBackend& b) {
  b.add_kernel(OpId::attention, attention_kernel, kAttentionTypes, /*strided_inputs=*/false);
  b.add_kernel(OpId::attention_backward, attention_backward_kernel, kAttentionTypes, /*strided_inputs=*/false);
  b.add_shape_limit(OpId::attention, attention_fits);
  b.add_shape_limit(OpId::attention_backward, attention_fits);
}

}  // namespace gpuml::cuda
