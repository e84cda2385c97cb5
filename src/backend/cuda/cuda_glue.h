// Host-side helpers for the CUDA kernel files: checked CUDA calls, and KernelCall tensors turned
// into the POD arguments of the launchers (cuda_kernels.h).
//
//   GPUML_CUDA_CHECK(cudaMemsetAsync(p, 0, n, stream), "embedding_backward");
//   Layout layout = layout_of(call.output);
//   StridedView a = view_over(call.inputs[0], call.output.shape());
#pragma once

#include <cuda_runtime.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "core/error.h"

namespace gpuml::cuda {

static_assert(static_cast<int>(ElemType::boolean) == static_cast<int>(DType::boolean) &&
                  static_cast<int>(ElemType::bf16) == static_cast<int>(DType::bf16) &&
                  static_cast<int>(ElemType::u8) == static_cast<int>(DType::u8),
              "ElemType must list the dtypes in DType's order");

#define GPUML_CUDA_CHECK(expr, what)                                                                        \
  do {                                                                                                      \
    cudaError_t gpuml_cuda_err_ = (expr);                                                                   \
    GPUML_CHECK_KIND(::gpuml::ErrorKind::Internal, gpuml_cuda_err_ == cudaSuccess, "{}: {} failed: {} ({})", \
                     what, #expr, cudaGetErrorString(gpuml_cuda_err_), cudaGetErrorName(gpuml_cuda_err_));  \
  } while (0)

inline ElemType elem_type(DType d) { return static_cast<ElemType>(static_cast<int>(d)); }

inline Layout layout_of(const Shape& shape, const char* op) {
  GPUML_CHECK_KIND(ErrorKind::Unsupported, shape.size() <= static_cast<size_t>(kMaxDims),
                   "cuda {}: {} dims, the CUDA kernels take at most {}", op, shape.size(), kMaxDims);
  Layout l;
  l.ndim = static_cast<int>(shape.size());
  l.numel = 1;
  for (int d = 0; d < l.ndim; ++d) {
    l.shape[d] = shape[d];
    l.numel *= shape[d];
  }
  return l;
}

// `t` read over `target` (NumPy broadcasting: stride 0 on broadcast dims).
inline StridedView view_over(const Tensor& t, const Shape& target) {
  StridedView v;
  v.data = t.raw_data();
  Strides s = broadcast_strides(t.shape(), t.strides(), target);
  for (size_t d = 0; d < s.size() && d < static_cast<size_t>(kMaxDims); ++d) v.strides[d] = s[d];
  return v;
}

// A tensor's own view (its shape is the layout).
inline StridedView view_of(const Tensor& t) {
  StridedView v;
  v.data = t.raw_data();
  for (int d = 0; d < t.ndim() && d < kMaxDims; ++d) v.strides[d] = t.strides()[d];
  return v;
}

// Runs a launcher and turns its std::runtime_error (the .cu side cannot build gpuml errors) into one.
template <typename Fn>
void launch(const char* op, Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    GPUML_FAIL(ErrorKind::Internal, "cuda {}: {}", op, e.what());
  }
}

}  // namespace gpuml::cuda
