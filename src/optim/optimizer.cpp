#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/spelling.h"

namespace gpuml::optim {

namespace {

bool is_adam(const OptimizerConfig& c) { return c.kind == "adam" || c.kind == "adamw"; }

// torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
constexpr double kClipNormEpsilon = 1e-6;

// Global-norm clipping's factor min(1, max_norm / (norm + eps)), shape (1,). The update op
// multiplies the gradient by it (hyper[3]), so the gradient is not scaled in a pass of its own.
// With `grad_scale` (1,), the gradient is grad_scale x grad: the norm is taken of that product
// (data parallelism's mean: the sum's squares could overflow f32 where the mean's do not), and the
// factor returned includes grad_scale.
Sym clip_factor(Sym grad, double max_norm, std::optional<Sym> grad_scale) {  // grad (P,)
  Sym scaled = grad_scale ? mul(grad, *grad_scale) : grad;
  Sym norm = reshape(sqrt(sum(mul(scaled, scaled))), {1});
  Sym factor = minimum(scalar_like(norm, 1.0), div(scalar_like(norm, max_norm), add_scalar(norm, kClipNormEpsilon)));
  return grad_scale ? mul(factor, *grad_scale) : factor;
}

}  // namespace

void validate(const OptimizerConfig& c) {
  GPUML_CHECK(c.kind == "sgd" || c.kind == "adam" || c.kind == "adamw",
              "optimizer: unknown kind '{}'; valid kinds are sgd, adam, adamw", c.kind);
  GPUML_CHECK(std::isfinite(c.lr) && c.lr > 0.0, "optimizer {}: lr must be a finite number > 0, got {}", c.kind,
              c.lr);
  double wd = weight_decay_of(c);
  GPUML_CHECK(std::isfinite(wd) && wd >= 0.0, "optimizer {}: weight_decay must be >= 0, got {}", c.kind, wd);
  GPUML_CHECK(std::isfinite(c.clip_grad_norm) && c.clip_grad_norm >= 0.0,
              "optimizer {}: clip_grad_norm must be >= 0 (0 turns clipping off), got {}", c.kind, c.clip_grad_norm);
  check_weight_decay_params(c.weight_decay_params);
  if (c.kind == "sgd") {
    GPUML_CHECK(std::isfinite(c.momentum) && c.momentum >= 0.0, "optimizer sgd: momentum must be >= 0, got {}",
                c.momentum);
    GPUML_CHECK(!c.nesterov || c.momentum > 0.0, "optimizer sgd: nesterov needs momentum > 0 (momentum is {})",
                c.momentum);
  } else {
    GPUML_CHECK(c.momentum == 0.0 && !c.nesterov,
                "optimizer {}: momentum/nesterov are sgd settings; adam and adamw take betas instead "
                "(--betas BETA1,BETA2)", c.kind);
    GPUML_CHECK(c.beta1 >= 0.0 && c.beta1 < 1.0, "optimizer {}: beta1 must be in [0, 1), got {}", c.kind, c.beta1);
    GPUML_CHECK(c.beta2 >= 0.0 && c.beta2 < 1.0, "optimizer {}: beta2 must be in [0, 1), got {}", c.kind, c.beta2);
    GPUML_CHECK(std::isfinite(c.eps) && c.eps >= 0.0, "optimizer {}: eps must be >= 0, got {}", c.kind, c.eps);
  }
}

double weight_decay_of(const OptimizerConfig& c) {
  if (c.weight_decay) return *c.weight_decay;
  return c.kind == "adamw" ? 0.01 : 0.0;
}

const std::vector<std::string>& weight_decay_params_names() {
  static const std::vector<std::string> names = {"all", "matrices"};
  return names;
}

void check_weight_decay_params(const std::string& name) {
  const std::vector<std::string>& names = weight_decay_params_names();
  GPUML_CHECK(std::find(names.begin(), names.end(), name) != names.end(),
              "--weight-decay-params '{}': expected one of {}{}", name, fmt::join(names, ", "),
              did_you_mean(name, names));
}

bool decays(const OptimizerConfig& c, const Shape& param_shape) {
  check_weight_decay_params(c.weight_decay_params);
  return c.weight_decay_params == "all" || param_shape.size() >= 2;
}

Tensor decay_mask(const OptimizerConfig& c, std::span<const ParamColumns> params, int64_t count, DType dtype) {
  std::vector<double> mask(static_cast<size_t>(count), 0.0);  // (P,)
  for (const ParamColumns& p : params) {
    const int64_t n = numel(p.shape);
    GPUML_CHECK_KIND(ErrorKind::Internal, p.offset >= 0 && p.offset + n <= count,
                     "decay_mask: a parameter {} at column {} does not fit in {} columns", shape_str(p.shape),
                     p.offset, count);
    if (decays(c, p.shape)) std::fill_n(mask.begin() + p.offset, n, 1.0);
  }
  return Tensor::from_values({count}, mask, dtype);
}

int64_t state_rows(const OptimizerConfig& c) {
  validate(c);
  if (c.kind == "sgd") return c.momentum > 0.0 ? 2 : 1;
  return 3;
}

Sym emit_update(const OptimizerConfig& c, Sym state, Sym flat_grad, Sym hyper, Sym decay, std::optional<Sym> grad_scale,
                std::optional<Sym> whole_grad) {
  validate(c);
  if (c.clip_grad_norm > 0.0)
    hyper = concat({hyper, clip_factor(whole_grad.value_or(flat_grad), c.clip_grad_norm, grad_scale)}, 0);
  else if (grad_scale) hyper = concat({hyper, *grad_scale}, 0);
  Attrs a;
  a.weight_decay = weight_decay_of(c);
  if (c.kind == "sgd") {
    a.momentum = c.momentum;
    a.nesterov = c.nesterov;
    return emit(OpId::sgd_update, {state, flat_grad, hyper, decay}, a);
  }
  a.beta1 = c.beta1;
  a.beta2 = c.beta2;
  a.eps = c.eps;
  a.decoupled_weight_decay = c.kind == "adamw";
  return emit(OpId::adam_update, {state, flat_grad, hyper, decay}, a);
}

Tensor hyper_values(const OptimizerConfig& c, double lr, int64_t step, DType dtype) {
  validate(c);
  GPUML_CHECK(step >= 1, "optimizer {}: step counts from 1 (the first update), got {}", c.kind, step);
  GPUML_CHECK(std::isfinite(lr) && lr >= 0.0, "optimizer {}: scheduled lr must be >= 0, got {}", c.kind, lr);
  double bias_correction1 = 1.0, bias_correction2 = 1.0;
  if (is_adam(c)) {
    bias_correction1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
    bias_correction2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
  }
  return Tensor::from_values({3}, {lr, bias_correction1, bias_correction2}, dtype);
}

Tensor initial_state(const OptimizerConfig& c, const Tensor& flat_params) {
  GPUML_CHECK_SHAPE(flat_params.ndim() == 1, "optimizer {}: initial_state wants flat params (P,), got {}", c.kind,
                    shape_str(flat_params.shape()));
  GPUML_CHECK_KIND(ErrorKind::DType, flat_params.dtype() == DType::f32 || flat_params.dtype() == DType::f64,
                   "optimizer {}: params must be f32 or f64, got {}", c.kind, flat_params.dtype());
  const int64_t rows = state_rows(c), count = flat_params.numel();
  Tensor state = Tensor::empty({rows, count}, flat_params.dtype());  // (S, P)
  const size_t row_bytes = static_cast<size_t>(count) * dtype_size(flat_params.dtype());
  if (row_bytes == 0) return state;
  auto* bytes = static_cast<unsigned char*>(state.raw_data());
  // Row 0 through the logical view, so a strided flat_params works too.
  Tensor row0 = Tensor::from_values({count}, flat_params.to_doubles(), flat_params.dtype());
  std::memcpy(bytes, row0.raw_data(), row_bytes);
  std::memset(bytes + row_bytes, 0, row_bytes * static_cast<size_t>(rows - 1));
  return state;
}

std::string describe(const OptimizerConfig& c) {
  std::string extras;  // the settings a plain run leaves at their defaults
  if (c.weight_decay_params != "all") extras += fmt::format(", weight_decay_params={}", c.weight_decay_params);
  if (c.clip_grad_norm > 0.0) extras += fmt::format(", clip_grad_norm={}", c.clip_grad_norm);
  if (c.kind == "sgd")
    return fmt::format("sgd(lr={}, momentum={}, nesterov={}, weight_decay={}{})", c.lr, c.momentum, c.nesterov,
                       weight_decay_of(c), extras);
  return fmt::format("{}(lr={}, betas=({}, {}), eps={}, weight_decay={}{})", c.kind, c.lr, c.beta1, c.beta2, c.eps,
                     weight_decay_of(c), extras);
}

}  // namespace gpuml::optim
