// Device-side helpers shared by the .cu files: element types, conversions through the
// accumulation type, strided offsets, launch geometry and the dtype switch. nvcc only.
//
//   dispatch_elem(t, [&]<typename T>(T) { my_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(...); });
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "backend/cuda/cuda_kernels.h"

namespace gpuml::cuda {

inline constexpr int kThreads = 256;

// Grid-stride loops cover any n; the grid is capped so that huge tensors do not make huge grids.
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return static_cast<unsigned>(b);
}

// Every launch is checked (the host side turns the exception into a gpuml::Error).
// GPUML_CUDA_SYNC=1 (debugging only; slow): every launch waits for its kernel, so a fault
// that surfaces asynchronously (an illegal address, a trap) is reported against the kernel that
// made it. CudaBackend::can_capture() is false then (a capture cannot synchronize).
inline bool sync_after_each_kernel() {
  static const bool on = [] {
    const char* e = std::getenv("GPUML_CUDA_SYNC");
    return e != nullptr && *e != '\0' && !(e[0] == '0' && e[1] == '\0');
  }();
  return on;
}

// Errors that a kernel makes while it runs, after its launch returned: they stay in the context
// and every later call returns them, so they say nothing about the launch that reports them.
inline bool is_asynchronous_fault(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction: case cudaErrorMisalignedAddress: case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc: case cudaErrorAssert: case cudaErrorLaunchTimeout: case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

// After a launch: cudaGetLastError holds this launch's own error (bad configuration, no kernel
// image for this GPU, too many resources) or an earlier kernel's asynchronous fault; say which.
inline void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && sync_after_each_kernel()) {
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
      throw std::runtime_error(std::string(what) + ": kernel failed while running (GPUML_CUDA_SYNC): " +
                               cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  }
  if (e == cudaSuccess) return;
  if (is_asynchronous_fault(e))
    throw std::runtime_error(std::string(what) + ": the GPU reported " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) +
                             ") from a kernel that ran earlier, not necessarily this one; rerun with GPUML_CUDA_SYNC=1 "
                             "to name the kernel that caused it");
  throw std::runtime_error(std::string(what) + ": kernel launch failed: " + cudaGetErrorName(e) + ": " +
                           cudaGetErrorString(e));
}

// The type arithmetic happens in: float for f32/bf16/f16, double for f64 and the integers (as the
// reference backend computes integers: through double, truncating on the way back).
template <typename T> struct AccOf { using type = double; };
template <> struct AccOf<float> { using type = float; };
template <> struct AccOf<__nv_bfloat16> { using type = float; };
template <> struct AccOf<__half> { using type = float; };
template <typename T> using Acc = typename AccOf<T>::type;

template <typename T>
__device__ __forceinline__ Acc<T> to_acc(T v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else return static_cast<Acc<T>>(v);
}
// Integers as the reference backend stores them (ref_kernels.h to_element): truncate toward zero
// to int64 (NaN -> 0, beyond the range -> the int64 extremes), then wrap to T's width, so u8
// 3 - 5 = 254. A plain static_cast<T>(double) saturates on the GPU (and is undefined in C++).
template <typename T>
__device__ __forceinline__ T wrap_int(double v) {
  if (v != v) return T(0);
  return static_cast<T>(static_cast<unsigned long long>(__double2ll_rz(v)));
}
template <typename T, typename A>
__device__ __forceinline__ T from_acc(A v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>) return v != A(0);
  else if constexpr (std::is_integral_v<T>) return wrap_int<T>(static_cast<double>(v));
  else return static_cast<T>(v);
}
template <typename T>
__device__ __forceinline__ double to_f64(T v) { return static_cast<double>(to_acc<T>(v)); }

// Element offset of logical (row-major) index i in a view with `strides` over `layout`.
__device__ __forceinline__ int64_t strided_offset(int64_t i, const Layout& layout, const int64_t* strides) {
  int64_t off = 0;
  for (int d = layout.ndim - 1; d >= 0; --d) {
    int64_t n = layout.shape[d];
    off += (i % n) * strides[d];
    i /= n;
  }
  return off;
}

// A view that walks memory in the layout's own row-major order (contiguous strides; size-1 dims
// may have any stride): element i is at offset i, no index arithmetic needed.
inline bool is_dense(const StridedView& v, const Layout& layout) {
  int64_t expected = 1;
  for (int d = layout.ndim - 1; d >= 0; --d) {
    if (layout.shape[d] == 1) continue;
    if (v.strides[d] != expected) return false;
    expected *= layout.shape[d];
  }
  return true;
}

__host__ __device__ inline bool is_aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// 16 bytes of elements, loaded and stored as one vector (LDG.128/STG.128).
template <typename T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

// This thread's share of a block-stride walk over a contiguous row of n elements: f(j, row[j]).
// Where the row starts 16-byte aligned, the body is read in 16-byte packs (thread t takes packs t,
// t + blockDim.x, ...) and the tail element by element; otherwise element by element. Either
// way the j a thread sees increase, so first-index tie rules (argmax) hold.
template <typename T, typename Fn>
__device__ __forceinline__ void block_row_walk(const T* row, int64_t n, Fn&& f) {
  constexpr int K = Pack<T>::kSize;
  int64_t done = 0;
  if (is_aligned16(row)) {
    const int64_t packs = n / K;
    const Pack<T>* p = reinterpret_cast<const Pack<T>*>(row);
    for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
      const Pack<T> v = p[q];
#pragma unroll
      for (int e = 0; e < K; ++e) f(q * K + e, v.v[e]);
    }
    done = packs * K;
  }
  for (int64_t j = done + threadIdx.x; j < n; j += blockDim.x) f(j, row[j]);
}

// The same walk over n elements `stride` apart: block_row_walk where they are contiguous.
template <typename T, typename Fn>
__device__ __forceinline__ void block_walk(const T* first, int64_t n, int64_t stride, Fn&& f) {
  if (stride == 1) {
    block_row_walk(first, n, f);
  } else {
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) f(j, first[j * stride]);
  }
}

#define GPUML_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename Fn>
void dispatch_elem(ElemType t, Fn&& fn) {
  switch (t) {
    case ElemType::f32: fn(float{}); return;
    case ElemType::f64: fn(double{}); return;
    case ElemType::bf16: fn(__nv_bfloat16{}); return;
    case ElemType::f16: fn(__half{}); return;
    case ElemType::i32: fn(int32_t{}); return;
    case ElemType::i64: fn(int64_t{}); return;
    case ElemType::u8: fn(uint8_t{}); return;
    case ElemType::boolean: fn(bool{}); return;
  }
  throw std::runtime_error("bad element type");
}

// The floating types only (kernels with transcendental math).
template <typename Fn>
void dispatch_float(ElemType t, Fn&& fn) {
  switch (t) {
    case ElemType::f32: fn(float{}); return;
    case ElemType::f64: fn(double{}); return;
    case ElemType::bf16: fn(__nv_bfloat16{}); return;
    case ElemType::f16: fn(__half{}); return;
    default: throw std::runtime_error("kernel supports floating types only");
  }
}

}  // namespace gpuml::cuda

namespace gpuml::cuda {

// Sum of `v` over the block (blockDim.x == kThreads), in a fixed order: deterministic. Every
// thread gets the result. `scratch` holds kThreads doubles.
__device__ __forceinline__ double block_sum(double v, double* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) scratch[threadIdx.x] += scratch[threadIdx.x + s];
    __syncthreads();
  }
  double r = scratch[0];
  __syncthreads();
  return r;
}

__device__ __forceinline__ double block_max(double v, double* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) scratch[threadIdx.x] = fmax(scratch[threadIdx.x], scratch[threadIdx.x + s]);
    __syncthreads();
  }
  double r = scratch[0];
  __syncthreads();
  return r;
}

inline unsigned capped_blocks(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 8 ? (rows > 0 ? rows : 1) : 65535 * 8);
}

}  // namespace gpuml::cuda
