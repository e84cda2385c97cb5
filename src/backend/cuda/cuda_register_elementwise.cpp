// Elementwise and movement ops on CUDA: the KernelCall side of cuda_elementwise.cu. Movement ops
// are all one strided copy between views (permute/slice/broadcast views of the input, slices of
// the output for concat, pad and slice_backward).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_glue.h"

namespace gpuml::cuda {

namespace {

constexpr std::initializer_list<DType> kFloat = {DType::f32, DType::f64, DType::bf16, DType::f16};
constexpr std::initializer_list<DType> kNumeric = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                                   DType::i32, DType::i64, DType::u8};
constexpr std::initializer_list<DType> kEvery = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                                 DType::i32, DType::i64, DType::u8, DType::boolean};

template <UnaryOp op>
void unary_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  launch("unary", [&] {
    launch_unary(op, elem_type(c.output.dtype()), view_over(c.inputs[0], shape), c.output.raw_data(),
                 layout_of(shape, "unary"), c.attrs.gelu_tanh, cuda_backend_of(c).stream_of(c));
  });
}

template <BinaryOp op>
void binary_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  launch("binary", [&] {
    launch_binary(op, elem_type(c.output.dtype()), view_over(c.inputs[0], shape), view_over(c.inputs[1], shape),
                  c.output.raw_data(), layout_of(shape, "binary"), cuda_backend_of(c).stream_of(c));
  });
}

template <CompareOp op>
void compare_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  launch("compare", [&] {
    launch_compare(op, elem_type(c.inputs[0].dtype()), view_over(c.inputs[0], shape), view_over(c.inputs[1], shape),
                   static_cast<bool*>(c.output.raw_data()), layout_of(shape, "compare"), cuda_backend_of(c).stream_of(c));
  });
}

void where_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  launch("where", [&] {
    launch_where(elem_type(c.output.dtype()), view_over(c.inputs[0], shape), view_over(c.inputs[1], shape),
                 view_over(c.inputs[2], shape), c.output.raw_data(), layout_of(shape, "where"),
                 cuda_backend_of(c).stream_of(c));
  });
}

void cast_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  launch("cast", [&] {
    launch_cast(elem_type(c.inputs[0].dtype()), elem_type(c.output.dtype()), view_over(c.inputs[0], shape),
                c.output.raw_data(), layout_of(shape, "cast"), cuda_backend_of(c).stream_of(c));
  });
}

// dst (a view, possibly of the output) = src (a view of the same shape), element by element.
void copy_view(const KernelCall& c, const Tensor& src, const Tensor& dst, const char* op) {
  launch(op, [&] {
    launch_strided_copy(static_cast<int>(dtype_size(src.dtype())), view_of(src), view_of(dst), layout_of(dst.shape(), op),
                        cuda_backend_of(c).stream_of(c));
  });
}

void fill_with(const KernelCall& c, const Tensor& t, double value) {
  launch("fill", [&] {
    launch_arange(elem_type(t.dtype()), t.raw_data(), t.numel(), value, 0.0, cuda_backend_of(c).stream_of(c));
  });
}

// The view of `t` that slice(attrs) selects (as the reference backend's sliced_view).
Tensor sliced_view(const Tensor& t, const Attrs& attrs) {
  SliceDims dims = normalize_slice(t.shape(), attrs);
  Strides strides = t.strides();
  int64_t offset = t.offset();
  for (int d = 0; d < t.ndim(); ++d) {
    offset += dims.start[d] * t.strides()[d];
    strides[d] *= dims.step[d];
  }
  return t.view_as(dims.size, strides, offset);
}

void copy_kernel(const KernelCall& c) { copy_view(c, c.inputs[0], c.output, "copy"); }

// reshape: the input's elements in row-major order, written into the output's shape.
void reshape_kernel(const KernelCall& c) {
  Tensor out_as_input = c.output.view_as(c.inputs[0].shape(), contiguous_strides(c.inputs[0].shape()), c.output.offset());
  copy_view(c, c.inputs[0], out_as_input, "reshape");
}
void permute_kernel(const KernelCall& c) { copy_view(c, c.inputs[0].permute(c.attrs.axes), c.output, "permute"); }
void slice_kernel(const KernelCall& c) { copy_view(c, sliced_view(c.inputs[0], c.attrs), c.output, "slice"); }
void broadcast_to_kernel(const KernelCall& c) {
  copy_view(c, c.inputs[0].broadcast_to(c.attrs.shape), c.output, "broadcast_to");
}
void slice_backward_kernel(const KernelCall& c) {
  fill_with(c, c.output, 0.0);
  copy_view(c, c.inputs[0], sliced_view(c.output, c.attrs), "slice_backward");
}
void concat_kernel(const KernelCall& c) {
  const int axis = normalize_axis(c.attrs.axis, c.output.ndim(), "concat");
  int64_t position = 0;
  for (const Tensor& input : c.inputs) {
    const int64_t size = input.dim(axis);
    copy_view(c, input, c.output.slice(axis, position, position + size), "concat");
    position += size;
  }
}
void pad_kernel(const KernelCall& c) {
  fill_with(c, c.output, c.attrs.value);
  Tensor interior = c.output;
  for (int d = 0; d < c.output.ndim(); ++d) {
    const int64_t before = c.attrs.pads[2 * d];
    interior = interior.slice(d, before, before + c.inputs[0].dim(d));
  }
  copy_view(c, c.inputs[0], interior, "pad");
}

void fill_kernel(const KernelCall& c) { fill_with(c, c.output, c.attrs.value); }
void arange_kernel(const KernelCall& c) {
  launch("arange", [&] {
    launch_arange(elem_type(c.output.dtype()), c.output.raw_data(), c.output.numel(), c.attrs.alpha, c.attrs.beta,
                  cuda_backend_of(c).stream_of(c));
  });
}

void gelu_backward_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  launch("gelu_backward", [&] {
    launch_gelu_backward(elem_type(c.output.dtype()), view_over(c.inputs[0], shape), view_over(c.inputs[1], shape),
                         c.output.raw_data(), layout_of(shape, "gelu_backward"), c.attrs.gelu_tanh,
                         cuda_backend_of(c).stream_of(c));
  });
}

}  // namespace

void register_elementwise_kernels(CudaBackend& b) {
  b.add_kernel(OpId::neg, unary_kernel<UnaryOp::neg>, kFloat);
  b.add_kernel(OpId::abs, unary_kernel<UnaryOp::abs>, kFloat);
  b.add_kernel(OpId::sign, unary_kernel<UnaryOp::sign>, kFloat);
  b.add_kernel(OpId::exp, unary_kernel<UnaryOp::exp>, kFloat);
  b.add_kernel(OpId::log, unary_kernel<UnaryOp::log>, kFloat);
  b.add_kernel(OpId::sqrt, unary_kernel<UnaryOp::sqrt>, kFloat);
  b.add_kernel(OpId::rsqrt, unary_kernel<UnaryOp::rsqrt>, kFloat);
  b.add_kernel(OpId::tanh, unary_kernel<UnaryOp::tanh>, kFloat);
  b.add_kernel(OpId::sigmoid, unary_kernel<UnaryOp::sigmoid>, kFloat);
  b.add_kernel(OpId::relu, unary_kernel<UnaryOp::relu>, kFloat);
  b.add_kernel(OpId::gelu, unary_kernel<UnaryOp::gelu>, kFloat);
  b.add_kernel(OpId::cast, cast_kernel, kEvery);
  b.add_kernel(OpId::copy, copy_kernel, kEvery);
  b.add_kernel(OpId::add, binary_kernel<BinaryOp::add>, kNumeric);
  b.add_kernel(OpId::sub, binary_kernel<BinaryOp::sub>, kNumeric);
  b.add_kernel(OpId::mul, binary_kernel<BinaryOp::mul>, kNumeric);
  b.add_kernel(OpId::div, binary_kernel<BinaryOp::div>, kFloat);  // integer division by 0: leave to ref
  b.add_kernel(OpId::pow, binary_kernel<BinaryOp::pow>, kFloat);
  b.add_kernel(OpId::maximum, binary_kernel<BinaryOp::maximum>, kEvery);
  b.add_kernel(OpId::minimum, binary_kernel<BinaryOp::minimum>, kEvery);
  b.add_kernel(OpId::eq, compare_kernel<CompareOp::eq>, kEvery);
  b.add_kernel(OpId::ne, compare_kernel<CompareOp::ne>, kEvery);
  b.add_kernel(OpId::lt, compare_kernel<CompareOp::lt>, kEvery);
  b.add_kernel(OpId::le, compare_kernel<CompareOp::le>, kEvery);
  b.add_kernel(OpId::gt, compare_kernel<CompareOp::gt>, kEvery);
  b.add_kernel(OpId::ge, compare_kernel<CompareOp::ge>, kEvery);
  b.add_kernel(OpId::where, where_kernel, {DType::boolean});
  b.add_kernel(OpId::gelu_backward, gelu_backward_kernel, kFloat);
  b.add_kernel(OpId::relu_backward, binary_kernel<BinaryOp::relu_backward>, kNumeric);
  b.add_kernel(OpId::reshape, reshape_kernel, kEvery);
  b.add_kernel(OpId::permute, permute_kernel, kEvery);
  b.add_kernel(OpId::slice, slice_kernel, kEvery);
  b.add_kernel(OpId::slice_backward, slice_backward_kernel, kEvery);
  b.add_kernel(OpId::broadcast_to, broadcast_to_kernel, kEvery);
  b.add_kernel(OpId::concat, concat_kernel, kEvery);
  b.add_kernel(OpId::pad, pad_kernel, kEvery);
  b.add_kernel(OpId::fill, fill_kernel, kEvery);
  b.add_kernel(OpId::arange, arange_kernel, kEvery);
}

}  // namespace gpuml::cuda
