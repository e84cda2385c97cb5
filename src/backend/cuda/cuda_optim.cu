// The fused optimizer updates: one pass over all P parameters (every state row) per step, in f32
// with the torch.optim formulas of the reference backend (src/backend/ref/ref_optim.cpp); decay
// (p,) scales weight_decay per element (1 decays, 0 does not).
#include "backend/cuda/cuda_device.cuh"

namespace gpuml::cuda {

namespace {

// hyper[3], when hyper has 4 elements (scaled), multiplies the gradient first: global-norm
// clipping's factor, computed on the device by the graph.
__device__ __forceinline__ float grad_scale(const float* hyper, bool scaled) { return scaled ? hyper[3] : 1.0f; }

// state (rows, p): row 0 parameters, row 1 momentum (rows == 2). hyper[0] = lr.
__global__ void sgd_update_kernel(const float* state, const float* grad, const float* hyper, const float* decay,
                                  float* out, int64_t rows, int64_t p, OptimParams o, bool scaled) {
  const float lr = hyper[0], scale = grad_scale(hyper, scaled);
  GPUML_GRID_STRIDE(i, p) {
    const float param = state[i];
    float g = grad[i] * scale + static_cast<float>(o.weight_decay) * decay[i] * param;
    if (rows == 2) {
      const float buf = static_cast<float>(o.momentum) * state[p + i] + g;
      out[p + i] = buf;
      g = o.nesterov ? g + static_cast<float>(o.momentum) * buf : buf;
    }
    out[i] = param - lr * g;
  }
}

// state (3, p): parameters, exp_avg, exp_avg_sq. hyper = [lr, 1-beta1^t, 1-beta2^t].
__global__ void adam_update_kernel(const float* state, const float* grad, const float* hyper, const float* decay,
                                   float* out, int64_t p, OptimParams o, bool scaled) {
  const float lr = hyper[0], bc1 = hyper[1], sqrt_bc2 = sqrtf(hyper[2]), scale = grad_scale(hyper, scaled);
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  // 1 - beta in double, then rounded, as the CPU and ref do: 1.0f - float(0.999) is off by 1.3e-5.
  const float omb1 = static_cast<float>(1.0 - o.beta1), omb2 = static_cast<float>(1.0 - o.beta2);
  const float wd = static_cast<float>(o.weight_decay), eps = static_cast<float>(o.eps);
  GPUML_GRID_STRIDE(i, p) {
    float param = state[i], g = grad[i] * scale;
    const float wd_i = wd * decay[i];
    if (o.decoupled_weight_decay) param *= 1.0f - lr * wd_i;
    else g += wd_i * param;
    const float m = b1 * state[p + i] + omb1 * g;
    const float v = b2 * state[2 * p + i] + omb2 * g * g;
    const float denom = sqrtf(v) / sqrt_bc2 + eps;
    out[i] = param - lr / bc1 * m / denom;
    out[p + i] = m;
    out[2 * p + i] = v;
  }
}

}  // namespace

void launch_sgd_update(const float* state, const float* grad, const float* hyper, bool scaled, const float* decay,
                       float* out, int64_t rows, int64_t p, const OptimParams& o, cudaStream_t stream) {
  if (p == 0) return;
  sgd_update_kernel<<<blocks_for(p), kThreads, 0, stream>>>(state, grad, hyper, decay, out, rows, p, o, scaled);
  check_launch("sgd_update");
}

void launch_adam_update(const float* state, const float* grad, const float* hyper, bool scaled, const float* decay,
                        float* out, int64_t p, const OptimParams& o, cudaStream_t stream) {
  if (p == 0) return;
  adam_update_kernel<<<blocks_for(p), kThreads, 0, stream>>>(state, grad, hyper, decay, out, p, o, scaled);
  check_launch("adam_update");
}

}  // namespace gpuml::cuda
