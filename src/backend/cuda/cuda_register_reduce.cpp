// Reductions and softmax on CUDA: any set of axes is brought to (outer, reduce, inner) form, by
// a view when the input is contiguous and the reduced axes are adjacent, else by one permuted copy.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"

namespace gpuml::cuda {

namespace {

constexpr std::initializer_list<DType> kFloat = {DType::f32, DType::f64, DType::bf16, DType::f16};
constexpr std::initializer_list<DType> kNumeric = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                                   DType::i32, DType::i64, DType::u8};

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t d = from; d < to; ++d) p *= s[d];
  return p;
}

void run_reduce(const KernelCall& c, ReduceOp op, const std::vector<bool>& reduced) {
  CudaBackend& gpu = cuda_backend_of(c);
  const Tensor& x = c.inputs[0];
  const Shape& shape = x.shape();
  const size_t n = shape.size();
  // Adjacent reduced axes [first, last) of a contiguous input need no copy.
  size_t first = n, last = 0, count = 0;
  for (size_t d = 0; d < n; ++d)
    if (reduced[d]) {
      first = std::min(first, d);
      last = d + 1;
      ++count;
    }
  Tensor src = x;
  int64_t outer, reduce, inner;
  if (count == 0) {
    outer = x.numel();
    reduce = 1;
    inner = 1;
  } else if (x.is_contiguous() && last - first == count) {
    outer = product(shape, 0, first);
    reduce = product(shape, first, last);
    inner = product(shape, last, n);
  } else {
    std::vector<int64_t> order;
    for (size_t d = 0; d < n; ++d)
      if (!reduced[d]) order.push_back(static_cast<int64_t>(d));
    for (size_t d = 0; d < n; ++d)
      if (reduced[d]) order.push_back(static_cast<int64_t>(d));
    Tensor permuted = x.permute(order);
    src = Tensor::empty(permuted.shape(), x.dtype(), gpu);
    launch("reduce", [&] {
      launch_strided_copy(static_cast<int>(dtype_size(x.dtype())), view_of(permuted), view_of(src),
                          layout_of(permuted.shape(), "reduce"), gpu.stream_of(c));
    });
    outer = product(permuted.shape(), 0, n - count);
    reduce = product(permuted.shape(), n - count, n);
    inner = 1;
  }
  launch("reduce", [&] {
    launch_reduce(op, elem_type(x.dtype()), src.raw_data(), c.output.raw_data(), outer, reduce, inner, gpu.stream_of(c));
  });
}

template <ReduceOp op>
void reduce_kernel(const KernelCall& c) {
  run_reduce(c, op, reduced_axes(c.attrs, c.inputs[0].ndim(), "reduce"));
}

void argmax_kernel(const KernelCall& c) {
  const int ndim = c.inputs[0].ndim();
  std::vector<bool> reduced(static_cast<size_t>(ndim), false);
  if (ndim > 0) reduced[static_cast<size_t>(normalize_axis(c.attrs.axis, ndim, "argmax"))] = true;
  run_reduce(c, ReduceOp::argmax, reduced);
}

template <bool log>
void softmax_kernel(const KernelCall& c) {
  const Tensor& x = c.inputs[0];  // contiguous (registered without strided inputs)
  const int ndim = x.ndim();
  int64_t outer = 1, n = 1, inner = 1;
  if (ndim > 0) {
    const size_t axis = static_cast<size_t>(normalize_axis(c.attrs.axis, ndim, log ? "log_softmax" : "softmax"));
    outer = product(x.shape(), 0, axis);
    n = x.shape()[axis];
    inner = product(x.shape(), axis + 1, x.shape().size());
  }
  launch("softmax", [&] {
    launch_softmax(elem_type(x.dtype()), log, x.raw_data(), c.output.raw_data(), outer, n, inner,
                   cuda_backend_of(c).stream_of(c));
  });
}

}  // namespace

void register_reduce_kernels(CudaBackend& b) {
  b.add_kernel(OpId::sum, reduce_kernel<ReduceOp::sum>, kNumeric);
  b.add_kernel(OpId::mean, reduce_kernel<ReduceOp::mean>, kFloat);
  b.add_kernel(OpId::max, reduce_kernel<ReduceOp::max>, kNumeric);
  b.add_kernel(OpId::argmax, argmax_kernel, kNumeric);
  b.add_kernel(OpId::softmax, softmax_kernel<false>, kFloat, /*strided_inputs=*/false);
  b.add_kernel(OpId::log_softmax, softmax_kernel<true>, kFloat, /*strided_inputs=*/false);
}

}  // namespace gpuml::cuda
