// Losses, normalisation, pooling, random draws, embedding and the fused optimizers on CUDA: the
// KernelCall side of cuda_loss_norm.cu, cuda_pool_gather.cu and cuda_optim.cu. These kernels read
// contiguous inputs (the planner inserts copies), except dropout.
#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"

namespace gpuml::cuda {

namespace {

constexpr std::initializer_list<DType> kFloat = {DType::f32, DType::f64, DType::bf16, DType::f16};

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t d = from; d < to; ++d) p *= s[d];
  return p;
}

// Two device int64 set to -1: a kernel lowers the first to the first bad row, then
// launch_record_bad_value copies the bad value at that row into the second, while the index
// tensor is still alive. Read at the end of the run (CudaBackend::check_deferred_errors), not
// here: reading it now would stall the stream once per check per step.
void defer_bad_row_check(const KernelCall& c, const Tensor& indices, const std::function<void(int64_t*)>& kernel,
                         CudaBackend::DeferredMessage message) {
  CudaBackend& gpu = cuda_backend_of(c);
  const cudaStream_t stream = gpu.stream_of(c);
  Tensor flag = gpu.check_flag();
  int64_t* slots = static_cast<int64_t*>(flag.raw_data());
  GPUML_CUDA_CHECK(cudaMemsetAsync(slots, 0xff, 2 * sizeof(int64_t), stream), "check");
  kernel(slots);
  launch("check", [&] { launch_record_bad_value(indices.raw_data(), indices.dtype() == DType::i64, slots, stream); });
  gpu.defer_check(std::move(flag), std::move(message));
}

void cross_entropy_kernel(const KernelCall& c) {
  const Tensor &logits = c.inputs[0], &labels = c.inputs[1];
  const int64_t n = logits.dim(0), classes = logits.dim(1), ignore = c.attrs.ignore_index;
  // Per-row losses and kept flags (2 * N doubles), freed in stream order after the kernels.
  Tensor rows = Tensor::empty({std::max<int64_t>(2 * n, 1)}, DType::f64, c.backend);
  auto kernel = [&](int64_t* bad) {
    launch("cross_entropy", [&] {
      launch_cross_entropy(elem_type(logits.dtype()), logits.raw_data(), labels.raw_data(),
                           labels.dtype() == DType::i64, c.output.raw_data(), c.extra_outputs[0].raw_data(), n,
                           classes, ignore, bad,
                           static_cast<double*>(rows.raw_data()), cuda_backend_of(c).stream_of(c));
    });
  };
  defer_bad_row_check(c, labels, kernel, [classes, ignore](int64_t row, int64_t label) {
    return fmt::format("cross_entropy: row {} has label {}, outside [0, {}) and not the ignore_index {}", row, label,
                       classes, ignore);
  });
}

// The forward op checks the labels; the backward op trusts them.
void cross_entropy_backward_kernel(const KernelCall& c) {
  const Tensor& logits = c.inputs[0];
  launch("cross_entropy_backward", [&] {
    launch_cross_entropy_backward(elem_type(logits.dtype()), logits.raw_data(), c.inputs[1].raw_data(),
                                  c.inputs[1].dtype() == DType::i64, c.inputs[2].raw_data(),
                                  elem_type(c.inputs[2].dtype()), c.inputs[3].raw_data(), c.output.raw_data(),
                                  logits.dim(0), logits.dim(1), c.attrs.ignore_index, cuda_backend_of(c).stream_of(c));
  });
}

void layer_norm_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];
  const size_t axis = static_cast<size_t>(normalize_axis(c.attrs.axis, x.ndim(), "layer_norm"));
  const int64_t d = product(x.shape(), axis, x.shape().size()), rows = product(x.shape(), 0, axis);
  launch("layer_norm", [&] {
    launch_layer_norm(elem_type(x.dtype()), elem_type(c.inputs[1].dtype()), x.raw_data(), c.inputs[1].raw_data(),
                      c.inputs[2].raw_data(), c.output.raw_data(), c.extra_outputs[0].raw_data(),
                      c.extra_outputs[1].raw_data(), rows, d, c.attrs.eps, cuda_backend_of(c).stream_of(c));
  });
}

void layer_norm_backward_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];
  const size_t axis = static_cast<size_t>(normalize_axis(c.attrs.axis, x.ndim(), "layer_norm_backward"));
  const int64_t d = product(x.shape(), axis, x.shape().size()), rows = product(x.shape(), 0, axis);
  // The parameters' per-chunk column sums, freed in stream order after the kernels.
  Tensor parts = Tensor::empty({layer_norm_param_parts(rows, d)}, DType::f64, c.backend);
  launch("layer_norm_backward", [&] {
    launch_layer_norm_backward(elem_type(x.dtype()), elem_type(c.inputs[1].dtype()), x.raw_data(),
                               c.inputs[1].raw_data(), c.inputs[2].raw_data(), c.inputs[3].raw_data(),
                               c.inputs[4].raw_data(), c.output.raw_data(),
                               c.extra_outputs[0].raw_data(), c.extra_outputs[1].raw_data(),
                               static_cast<double*>(parts.raw_data()), rows, d, cuda_backend_of(c).stream_of(c));
  });
}

void batch_norm_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];  // (N, C, ...)
  const int64_t s = product(x.shape(), 2, x.shape().size());
  launch("batch_norm", [&] {
    launch_batch_norm(elem_type(x.dtype()), x.raw_data(), c.inputs[1].raw_data(), c.inputs[2].raw_data(),
                      c.inputs[3].raw_data(), c.inputs[4].raw_data(), c.output.raw_data(), x.dim(0), x.dim(1), s,
                      c.attrs.training, c.attrs.eps, cuda_backend_of(c).stream_of(c));
  });
}

void batch_norm_backward_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];
  const int64_t s = product(x.shape(), 2, x.shape().size());
  launch("batch_norm_backward", [&] {
    launch_batch_norm_backward(elem_type(x.dtype()), x.raw_data(), c.inputs[1].raw_data(), c.inputs[2].raw_data(),
                               c.output.raw_data(), x.dim(0), x.dim(1), s, c.attrs.eps, cuda_backend_of(c).stream_of(c));
  });
}

PoolParams pool_params(const Shape& x, const Shape& y, const Attrs& a, bool dilated) {  // x (N,C,H,W), y (N,C,OH,OW)
  return {x[0], x[1], x[2], x[3], y[2], y[3], a.kernel[0], a.kernel[1], a.stride[0], a.stride[1],
          a.padding[0], a.padding[1], dilated ? a.dilation[0] : 1, dilated ? a.dilation[1] : 1, a.count_include_pad};
}

void max_pool_kernel(const KernelCall& c) {
  launch("max_pool2d", [&] {
    launch_max_pool(elem_type(c.output.dtype()), c.inputs[0].raw_data(), c.output.raw_data(),
                    pool_params(c.inputs[0].shape(), c.output.shape(), c.attrs, true), cuda_backend_of(c).stream_of(c));
  });
}
void max_pool_backward_kernel(const KernelCall& c) {  // (x, dy) -> dx
  launch("max_pool2d_backward", [&] {
    launch_max_pool_backward(elem_type(c.output.dtype()), c.inputs[0].raw_data(), c.inputs[1].raw_data(),
                             c.output.raw_data(), pool_params(c.inputs[0].shape(), c.inputs[1].shape(), c.attrs, true),
                             cuda_backend_of(c).stream_of(c));
  });
}
void avg_pool_kernel(const KernelCall& c) {
  launch("avg_pool2d", [&] {
    launch_avg_pool(elem_type(c.output.dtype()), c.inputs[0].raw_data(), c.output.raw_data(),
                    pool_params(c.inputs[0].shape(), c.output.shape(), c.attrs, false), cuda_backend_of(c).stream_of(c));
  });
}
void avg_pool_backward_kernel(const KernelCall& c) {  // dy -> dx of attrs.shape
  launch("avg_pool2d_backward", [&] {
    launch_avg_pool_backward(elem_type(c.output.dtype()), c.inputs[0].raw_data(), c.output.raw_data(),
                             pool_params(c.output.shape(), c.inputs[0].shape(), c.attrs, false),
                             cuda_backend_of(c).stream_of(c));
  });
}

void embedding_kernel(const KernelCall& c) {
  const Tensor &weight = c.inputs[0], &idx = c.inputs[1];  // (V, D), (...)
  const int64_t vocab = weight.dim(0);
  auto kernel = [&](int64_t* bad) {
    launch("embedding", [&] {
      launch_embedding(elem_type(weight.dtype()), weight.raw_data(), idx.raw_data(), idx.dtype() == DType::i64,
                       c.output.raw_data(), idx.numel(), vocab, weight.dim(1), bad, cuda_backend_of(c).stream_of(c));
    });
  };
  defer_bad_row_check(c, idx, kernel, [vocab](int64_t row, int64_t index) {
    return fmt::format("embedding: index {} at position {} is outside [0, {})", index, row, vocab);
  });
}

// Scatter-add with atomics (in index order under --deterministic) in f32/f64; bf16/f16 gradients
// accumulate in f32 and are cast once.
void embedding_backward_kernel(const KernelCall& c) {
  CudaBackend& gpu = cuda_backend_of(c);
  const Tensor &idx = c.inputs[0], &dy = c.inputs[1];  // (...), (..., D)
  const int64_t vocab = c.output.dim(0), d = c.output.dim(1);
  const bool wide = c.output.dtype() == DType::f32 || c.output.dtype() == DType::f64;
  Tensor dy_acc = dy, dw_acc = c.output;
  if (!wide) {
    dy_acc = Tensor::empty(dy.shape(), DType::f32, gpu);
    dw_acc = Tensor::empty(c.output.shape(), DType::f32, gpu);
    launch("embedding_backward", [&] {
      launch_cast(elem_type(dy.dtype()), ElemType::f32, view_of(dy), dy_acc.raw_data(), layout_of(dy.shape(), "embedding_backward"),
                  gpu.stream_of(c));
    });
  }
  launch("embedding_backward", [&] {
    launch_embedding_backward(elem_type(dw_acc.dtype()), idx.raw_data(), idx.dtype() == DType::i64, dy_acc.raw_data(),
                              dw_acc.raw_data(), idx.numel(), vocab, d, c.attrs.deterministic, gpu.stream_of(c));
  });
  if (!wide)
    launch("embedding_backward", [&] {
      launch_cast(ElemType::f32, elem_type(c.output.dtype()), view_of(dw_acc), c.output.raw_data(),
                  layout_of(c.output.shape(), "embedding_backward"), gpu.stream_of(c));
    });
}

const uint64_t* offset_slot(const KernelCall& c) { return static_cast<const uint64_t*>(c.offset_slot); }

void dropout_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  const Shape& shape = c.output.shape();
  if (!a.training || a.p == 0.0) {
    launch("dropout", [&] {
      launch_strided_copy(static_cast<int>(dtype_size(c.output.dtype())), view_over(c.inputs[0], shape), view_of(c.output),
                          layout_of(shape, "dropout"), cuda_backend_of(c).stream_of(c));
    });
    return;
  }
  launch("dropout", [&] {
    launch_dropout(elem_type(c.output.dtype()), view_over(c.inputs[0], shape), c.output.raw_data(),
                   layout_of(shape, "dropout"), a.p, a.seed, a.offset, offset_slot(c), cuda_backend_of(c).stream_of(c));
  });
}

template <bool normal>
void random_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  launch(normal ? "normal" : "uniform", [&] {
    launch_random(elem_type(c.output.dtype()), normal, c.output.raw_data(), c.output.numel(), a.alpha, a.beta, a.seed,
                  a.offset, offset_slot(c), cuda_backend_of(c).stream_of(c));
  });
}

OptimParams optim_params(const Attrs& a) {
  return {a.momentum, a.weight_decay, a.beta1, a.beta2, a.eps, a.nesterov, a.decoupled_weight_decay};
}

void sgd_update_kernel(const KernelCall& c) {  // (state (S, P), grad (P,), hyper (3,), decay (P,))
  const Tensor& state = c.inputs[0];
  launch("sgd_update", [&] {
    launch_sgd_update(static_cast<const float*>(state.raw_data()), static_cast<const float*>(c.inputs[1].raw_data()),
                      static_cast<const float*>(c.inputs[2].raw_data()), c.inputs[2].numel() > 3,
                      static_cast<const float*>(c.inputs[3].raw_data()), static_cast<float*>(c.output.raw_data()),
                      state.dim(0), state.dim(1), optim_params(c.attrs), cuda_backend_of(c).stream_of(c));
  });
}

void adam_update_kernel(const KernelCall& c) {
  const Tensor& state = c.inputs[0];
  launch("adam_update", [&] {
    launch_adam_update(static_cast<const float*>(state.raw_data()), static_cast<const float*>(c.inputs[1].raw_data()),
                       static_cast<const float*>(c.inputs[2].raw_data()), c.inputs[2].numel() > 3,
                       static_cast<const float*>(c.inputs[3].raw_data()), static_cast<float*>(c.output.raw_data()),
                       state.dim(1), optim_params(c.attrs), cuda_backend_of(c).stream_of(c));
  });
}

}  // namespace

void register_nn_kernels(CudaBackend& b) {
  b.add_kernel(OpId::cross_entropy, cross_entropy_kernel, kFloat, false);
  b.add_kernel(OpId::cross_entropy_backward, cross_entropy_backward_kernel, kFloat, false);
  b.add_kernel(OpId::layer_norm, layer_norm_kernel, kFloat, false);
  b.add_kernel(OpId::layer_norm_backward, layer_norm_backward_kernel, kFloat, false);
  b.add_kernel(OpId::batch_norm, batch_norm_kernel, kFloat, false);
  b.add_kernel(OpId::batch_norm_backward, batch_norm_backward_kernel, kFloat, false);
  b.add_kernel(OpId::max_pool2d, max_pool_kernel, kFloat, false);
  b.add_kernel(OpId::max_pool2d_backward, max_pool_backward_kernel, kFloat, false);
  b.add_kernel(OpId::avg_pool2d, avg_pool_kernel, kFloat, false);
  b.add_kernel(OpId::avg_pool2d_backward, avg_pool_backward_kernel, kFloat, false);
  b.add_kernel(OpId::embedding, embedding_kernel, {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32,
                                                   DType::i64, DType::u8, DType::boolean}, false);
  b.add_kernel(OpId::embedding_backward, embedding_backward_kernel, {DType::i32, DType::i64}, false);
  b.add_kernel(OpId::dropout, dropout_kernel, kFloat);
  b.add_kernel(OpId::uniform, random_kernel<false>, kFloat);
  b.add_kernel(OpId::normal, random_kernel<true>, kFloat);
  // The optimizers keep f32 master weights and state (f64 falls back to cpu).
  b.add_kernel(OpId::sgd_update, sgd_update_kernel, {DType::f32}, false);
  b.add_kernel(OpId::adam_update, adam_update_kernel, {DType::f32}, false);
}

}  // namespace gpuml::cuda
