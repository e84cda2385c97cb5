// Fused optimizer updates: every parameter and its optimizer state are read and written in ONE
// parallel pass over P (each thread a contiguous chunk, the inner loop branch-free so it
// vectorizes), instead of one elementwise op per formula term. Arithmetic in the state's dtype,
// in the order torch.optim uses, so f32 results track PyTorch's to rounding, except that the
// passes flush denormals to zero (FlushDenormals below).
#include <cmath>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loops.h"

namespace gpuml::cpu {

namespace {

// Denormal floats (magnitude below 1.2e-38 in f32) cost the CPU a microcode assist per lane: an
// update pass over them ran 16x slower (bench/optim_bench.cpp, adam_denormal_m). Training makes
// them: the first moment of a parameter whose gradient became 0 (a dead ReLU unit) decays by
// beta1 each step through the denormal range, and a small gradient's square underflows into it
// (11% of the mlp's first-layer exp_avg after 3000 steps; the update took 0.7 ms a step instead of
// 0.3). For the pass only, this thread's MXCSR flushes them to zero (FTZ: results, DAZ: inputs),
// and is restored after. A state value below 1e-38 moves no parameter of normal size (the step
// is lr x m / (sqrt(v) + eps)): the mlp's weights after 3000 steps are the same bits either way,
// only the moments that would be denormal are 0. The ref backend keeps denormals (the spec).
class FlushDenormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

// hyper[3], when hyper has 4 elements, multiplies the gradient first (global-norm clipping's
// factor, computed in the graph): one pass over the gradient fewer than scaling it apart, and the
// same products (a factor of 1 is exact).
template <typename T>
T grad_scale(const KernelCall& c) {
  return c.inputs[2].numel() > 3 ? ptr<const T>(c.inputs[2])[3] : T(1);
}

// state (S, P) rows: [param] or [param, momentum buffer]; grad (P,); hyper (3,) = [lr, -, -];
// decay (P,) each element's weight-decay multiplier.

template <typename T, bool kMomentum, bool kNesterov>
void sgd_pass(const T* state, const T* grad, const T* decay, T* out, int64_t count, T lr, T scale, const Attrs& a) {
  const T weight_decay = static_cast<T>(a.weight_decay), momentum = static_cast<T>(a.momentum);
  parallel_for(count, count * 4, [&](int64_t begin, int64_t end) {
    const FlushDenormals flush;
    const T* param = state;
    const T* buf = state + count;
    T* new_param = out;
    T* new_buf = out + count;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      T g = grad[i] * scale + weight_decay * decay[i] * param[i];
      if constexpr (kMomentum) {
        T b = momentum * buf[i] + g;
        new_buf[i] = b;
        g = kNesterov ? g + momentum * b : b;
      }
      new_param[i] = param[i] - lr * g;
    }
  });
}

template <typename T>
void sgd_typed(const KernelCall& c) {
  const Tensor& state = c.inputs[0];
  const int64_t rows = state.shape()[0], count = state.shape()[1];
  const T* s = ptr<const T>(state);
  const T* g = ptr<const T>(c.inputs[1]);
  const T lr = ptr<const T>(c.inputs[2])[0];
  const T* decay = ptr<const T>(c.inputs[3]);
  T* out = ptr<T>(c.output);
  const T scale = grad_scale<T>(c);
  if (rows == 1) sgd_pass<T, false, false>(s, g, decay, out, count, lr, scale, c.attrs);
  else if (c.attrs.nesterov) sgd_pass<T, true, true>(s, g, decay, out, count, lr, scale, c.attrs);
  else sgd_pass<T, true, false>(s, g, decay, out, count, lr, scale, c.attrs);
}

// state (3, P) rows: [param, m, v]; grad (P,); hyper (3,) = [lr, 1 - beta1^t, 1 - beta2^t];
// decay (P,) each element's weight-decay multiplier.
template <typename T, bool kDecoupled>
void adam_pass(const T* state, const T* grad, const T* decay, T* out, int64_t count, const T* hyper, T scale,
               const Attrs& a) {
  const T lr = hyper[0];
  const T step_size = lr / hyper[1], bias_correction2_sqrt = std::sqrt(hyper[2]);
  const T beta1 = static_cast<T>(a.beta1), beta2 = static_cast<T>(a.beta2), eps = static_cast<T>(a.eps);
  const T one_minus_beta1 = static_cast<T>(1.0 - a.beta1), one_minus_beta2 = static_cast<T>(1.0 - a.beta2);
  // A multiplier of 1 leaves these products exact, so a mask of ones gives the unmasked update's bits.
  const T weight_decay = static_cast<T>(a.weight_decay);
  const T lr_weight_decay = lr * weight_decay;
  parallel_for(count, count * 8, [&](int64_t begin, int64_t end) {
    const FlushDenormals flush;
    const T *param = state, *m = state + count, *v = state + 2 * count;
    T *new_param = out, *new_m = out + count, *new_v = out + 2 * count;
    // The constants as locals of this thread: captured by reference they were loaded from memory
    // again on every iteration (a store to the new state might have changed them).
    const T step_size_ = step_size, bias_correction2_sqrt_ = bias_correction2_sqrt, beta1_ = beta1, beta2_ = beta2,
            eps_ = eps, one_minus_beta1_ = one_minus_beta1, one_minus_beta2_ = one_minus_beta2,
            weight_decay_ = weight_decay, lr_weight_decay_ = lr_weight_decay, scale_ = scale;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      T p = param[i], g = grad[i] * scale_;
      if constexpr (kDecoupled) p *= T(1) - lr_weight_decay_ * decay[i];
      else g += weight_decay_ * decay[i] * p;
      T mi = beta1_ * m[i] + one_minus_beta1_ * g;
      T vi = beta2_ * v[i] + one_minus_beta2_ * g * g;
      new_m[i] = mi;
      new_v[i] = vi;
      new_param[i] = p - step_size_ * mi / (std::sqrt(vi) / bias_correction2_sqrt_ + eps_);
    }
  });
}

template <typename T>
void adam_typed(const KernelCall& c) {
  const T* hyper = ptr<const T>(c.inputs[2]);
  GPUML_CHECK(hyper[1] > T(0) && hyper[2] > T(0),
              "adam_update: hyper[1] = 1-beta1^t and hyper[2] = 1-beta2^t must be > 0 (t counts from 1), "
              "got {} and {}",
              static_cast<double>(hyper[1]), static_cast<double>(hyper[2]));
  const int64_t count = c.inputs[0].shape()[1];
  const T* s = ptr<const T>(c.inputs[0]);
  const T* g = ptr<const T>(c.inputs[1]);
  const T* decay = ptr<const T>(c.inputs[3]);
  T* out = ptr<T>(c.output);
  if (c.attrs.decoupled_weight_decay) adam_pass<T, true>(s, g, decay, out, count, hyper, grad_scale<T>(c), c.attrs);
  else adam_pass<T, false>(s, g, decay, out, count, hyper, grad_scale<T>(c), c.attrs);
}

void sgd_update_kernel(const KernelCall& c) {
  if (c.output.dtype() == DType::f64) sgd_typed<double>(c);
  else sgd_typed<float>(c);
}

void adam_update_kernel(const KernelCall& c) {
  if (c.output.dtype() == DType::f64) adam_typed<double>(c);
  else adam_typed<float>(c);
}

}  // namespace

// Contiguous inputs only: the pass indexes raw rows (the planner copies a strided input first).
void register_optim_kernels(CpuBackend& backend) {
  backend.add_kernel(OpId::sgd_update, sgd_update_kernel, {DType::f32, DType::f64}, /*strided_inputs*/ false);
  backend.add_kernel(OpId::adam_update, adam_update_kernel, {DType::f32, DType::f64}, /*strided_inputs*/ false);
}

}  // namespace gpuml::cpu
