// Reference optimizer updates, written as torch.optim's update formulas one parameter at a time
// in float64: sgd_update is torch.optim.SGD (dampening 0), adam_update is torch.optim.Adam, or
// torch.optim.AdamW with attrs.decoupled_weight_decay. Both are pure: the new state is the output.
// Element i decays with weight_decay * decay[i] (decay[i] 1 or 0: torch's parameter groups with
// weight_decay set or 0).
#include <cmath>

#include "backend/ref/ref_kernels.h"
#include "core/error.h"

namespace gpuml::ref {

namespace {

constexpr DType kOptimizerDTypes[] = {DType::f32, DType::f64};

// hyper[3], when hyper has it, multiplies the gradient before anything else (clipping's factor).
double grad_scale(const std::vector<double>& hyper) { return hyper.size() > 3 ? hyper[3] : 1.0; }

// state (S, P) rows: [param] or [param, momentum buffer]; hyper (3,) = [lr, unused, unused].
void sgd_update_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  const int64_t rows = c.inputs[0].shape()[0], count = c.inputs[0].shape()[1];
  std::vector<double> state = load(c.inputs[0]);  // (S, P)
  std::vector<double> grad = load(c.inputs[1]);   // (P,)
  const std::vector<double> hyper = load(c.inputs[2]);
  const double lr = hyper[0], scale = grad_scale(hyper);
  std::vector<double> decay = load(c.inputs[3]);  // (P,)
  for (int64_t i = 0; i < count; ++i) {
    double& param = state[i];
    double g = grad[i] * scale + a.weight_decay * decay[i] * param;
    if (rows == 2) {
      double& buf = state[count + i];
      buf = a.momentum * buf + g;
      g = a.nesterov ? g + a.momentum * buf : buf;
    }
    param -= lr * g;
  }
  store(c.output, state);
}

// state (3, P) rows: [param, m, v]; hyper (3,) = [lr, 1 - beta1^t, 1 - beta2^t].
void adam_update_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  const int64_t count = c.inputs[0].shape()[1];
  std::vector<double> state = load(c.inputs[0]);  // (3, P)
  std::vector<double> grad = load(c.inputs[1]);   // (P,)
  std::vector<double> hyper = load(c.inputs[2]);  // (3,)
  std::vector<double> decay = load(c.inputs[3]);  // (P,)
  const double lr = hyper[0], bias_correction1 = hyper[1], bias_correction2 = hyper[2];
  GPUML_CHECK(bias_correction1 > 0.0 && bias_correction2 > 0.0,
              "adam_update: hyper[1] = 1-beta1^t and hyper[2] = 1-beta2^t must be > 0 (t counts from 1), "
              "got {} and {}",
              bias_correction1, bias_correction2);
  for (int64_t i = 0; i < count; ++i) {
    double &param = state[i], &m = state[count + i], &v = state[2 * count + i];
    double g = grad[i] * grad_scale(hyper);
    const double weight_decay = a.weight_decay * decay[i];
    if (a.decoupled_weight_decay) param *= 1.0 - lr * weight_decay;
    else g += weight_decay * param;
    m = a.beta1 * m + (1.0 - a.beta1) * g;
    v = a.beta2 * v + (1.0 - a.beta2) * g * g;
    double denom = std::sqrt(v) / std::sqrt(bias_correction2) + a.eps;
    param -= lr / bias_correction1 * m / denom;
  }
  store(c.output, state);
}

}  // namespace

std::vector<KernelEntry> optim_kernels() {
  return {
      {OpId::sgd_update, sgd_update_kernel, kOptimizerDTypes},
      {OpId::adam_update, adam_update_kernel, kOptimizerDTypes},
  };
}

}  // namespace gpuml::ref
