// GPUML_HD marks a function callable from host and device code. Its own header, with no other
// includes, so that CUDA sources (compiled by nvcc, which cannot parse fmt) can include the
// host/device headers that use it (core/philox.h).
//
//   GPUML_HD float twice(float x) { return 2 * x; }
#pragma once

#if defined(__CUDACC__)
#define GPUML_HD __host__ __device__ inline
#else
#define GPUML_HD inline
#endif
