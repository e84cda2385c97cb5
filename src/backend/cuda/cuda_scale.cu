// values (n,) f32 *= factor: the scale of an average on device memory (nccl_communicator.cpp).
#include "backend/cuda/cuda_device.cuh"

namespace gpuml::cuda {

namespace {

__global__ void scale_f32_kernel(float* values, int64_t n, float factor) {  // values (n,)
  GPUML_GRID_STRIDE(i, n) { values[i] *= factor; }
}

}  // namespace

void launch_scale_f32(float* values, int64_t n, float factor, cudaStream_t stream) {
  if (n == 0) return;
  scale_f32_kernel<<<blocks_for(n), kThreads, 0, stream>>>(values, n, factor);
  check_launch("scale_f32");
}

}  // namespace gpuml::cuda
