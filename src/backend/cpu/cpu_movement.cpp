// copy and the movement ops (reshape, permute, slice, slice_backward, broadcast_to, concat, pad):
// each builds a strided view of its input or output and runs the one strided copy.
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

// Copies by element size: movement never looks at values, so bf16 and u16 move alike.
template <typename U>
void copy_elements(const Tensor& dst, const Tensor& src) {
  StridedLoop<2> loop = make_strided_loop<2>(dst.shape(), {dst.strides(), src.strides()});
  U* d = static_cast<U*>(dst.raw_data());
  const U* s = static_cast<const U*>(src.raw_data());
  for_each_row(loop, [&](int64_t n, const Offsets<2>& off, const Offsets<2>& step) {
    U* o = d + off[0];
    const U* i = s + off[1];
    if (step[0] == 1 && step[1] == 1) {
      std::memcpy(o, i, static_cast<size_t>(n) * sizeof(U));
    } else if (step[0] == 1 && step[1] == 0) {
      U v = *i;
      for (int64_t k = 0; k < n; ++k) o[k] = v;
    } else if (step[0] == 1) {
      for (int64_t k = 0; k < n; ++k) o[k] = i[k * step[1]];
    } else {
      for (int64_t k = 0; k < n; ++k) o[k * step[0]] = i[k * step[1]];
    }
  });
}

void copy_kernel(const KernelCall& call) { strided_copy(call.output, call.inputs[0]); }

void reshape_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  strided_copy(out.view_as(x.shape(), contiguous_strides(x.shape()), out.offset()), x);
}

void permute_kernel(const KernelCall& call) { strided_copy(call.output, call.inputs[0].permute(call.attrs.axes)); }

// The view of `t` that slice attrs select (shape `normalize_slice(t.shape()).size`).
Tensor sliced_view(const Tensor& t, const Attrs& attrs) {
  SliceDims sd = normalize_slice(t.shape(), attrs);
  Strides strides = t.strides();
  int64_t offset = t.offset();
  for (int d = 0; d < t.ndim(); ++d) {
    offset += sd.start[d] * strides[d];
    strides[d] *= sd.step[d];
  }
  return t.view_as(sd.size, strides, offset);
}

void slice_kernel(const KernelCall& call) { strided_copy(call.output, sliced_view(call.inputs[0], call.attrs)); }

void slice_backward_kernel(const KernelCall& call) {  // (dy) -> zeros of attrs.shape, dy at the slice
  fill_value(call.output, 0.0);
  strided_copy(sliced_view(call.output, call.attrs), call.inputs[0]);
}

void broadcast_to_kernel(const KernelCall& call) {
  strided_copy(call.output, call.inputs[0].broadcast_to(call.attrs.shape));
}

void concat_kernel(const KernelCall& call) {
  const Tensor& out = call.output;
  int axis = normalize_axis(call.attrs.axis, out.ndim(), "concat");
  int64_t pos = 0;
  for (const Tensor& x : call.inputs) {
    int64_t len = x.shape()[axis];
    strided_copy(out.slice(axis, pos, pos + len), x);
    pos += len;
  }
}

void pad_kernel(const KernelCall& call) {
  const Tensor &x = call.inputs[0], &out = call.output;
  fill_value(out, call.attrs.value);
  int64_t offset = out.offset();
  for (int d = 0; d < out.ndim(); ++d) offset += call.attrs.pads[2 * d] * out.strides()[d];
  strided_copy(out.view_as(x.shape(), out.strides(), offset), x);
}

}  // namespace

void strided_copy(const Tensor& dst, const Tensor& src) {
  GPUML_CHECK_KIND(ErrorKind::Internal, dst.shape() == src.shape() && dst.dtype() == src.dtype(),
                   "strided_copy: {} {} into {} {}", shape_str(src.shape()), src.dtype(), shape_str(dst.shape()),
                   dst.dtype());
  switch (dtype_size(dst.dtype())) {
    case 1: return copy_elements<uint8_t>(dst, src);
    case 2: return copy_elements<uint16_t>(dst, src);
    case 4: return copy_elements<uint32_t>(dst, src);
    case 8: return copy_elements<uint64_t>(dst, src);
    default: GPUML_FAIL(ErrorKind::Internal, "strided_copy: element size {}", dtype_size(dst.dtype()));
  }
}

void fill_value(const Tensor& dst, double value) {
  dispatch_dtype(dst.dtype(), [&]<typename T>(T) {
    const T v = from_double<T>(value);
    T* d = ptr<T>(dst);
    StridedLoop<1> loop = make_strided_loop<1>(dst.shape(), {dst.strides()});
    for_each_row(loop, [&](int64_t n, const Offsets<1>& off, const Offsets<1>& step) {
      T* o = d + off[0];
      if (step[0] == 1) std::fill(o, o + n, v);
      else for (int64_t k = 0; k < n; ++k) o[k * step[0]] = v;
    });
  });
}

Tensor contiguous_copy(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  strided_copy(out, t);
  return out;
}

void register_movement_kernels(CpuBackend& backend) {
  std::initializer_list<DType> all{DType::f32, DType::f64, DType::bf16, DType::f16,
                                   DType::i32, DType::i64, DType::u8,   DType::boolean};
  backend.add_kernel(OpId::copy, copy_kernel, all);
  backend.add_kernel(OpId::reshape, reshape_kernel, all);
  backend.add_kernel(OpId::permute, permute_kernel, all);
  backend.add_kernel(OpId::slice, slice_kernel, all);
  backend.add_kernel(OpId::slice_backward, slice_backward_kernel, all);
  backend.add_kernel(OpId::broadcast_to, broadcast_to_kernel, all);
  backend.add_kernel(OpId::concat, concat_kernel, all);
  backend.add_kernel(OpId::pad, pad_kernel, all);
}

}  // namespace gpuml::cpu
