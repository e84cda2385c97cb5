// Reference elementwise kernels: unary math, cast/copy, binary arithmetic and comparisons with
// NumPy broadcasting, where, gelu and its derivative, relu's derivative.
#include <cmath>
#include <limits>
#include <numbers>

#include "backend/ref/ref_kernels.h"

namespace gpuml::ref {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// --- the math, one scalar function per op ---------------------------------------------------

double neg_fn(double x) { return -x; }
double abs_fn(double x) { return std::fabs(x); }
// sign(0) = 0 and sign(NaN) = NaN, as NumPy.
double sign_fn(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : x); }
double exp_fn(double x) { return std::exp(x); }
double log_fn(double x) { return std::log(x); }
double sqrt_fn(double x) { return std::sqrt(x); }
double rsqrt_fn(double x) { return 1.0 / std::sqrt(x); }
double tanh_fn(double x) { return std::tanh(x); }
double sigmoid_fn(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// NaN stays NaN (NaN < 0 is false), as PyTorch.
double relu_fn(double x) { return x < 0 ? 0.0 : x; }

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2)); }
double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
}
// d/dx of the two gelu forms.
double gelu_erf_grad(double x) {
  double cdf = 0.5 * (1.0 + std::erf(x / std::numbers::sqrt2));
  double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
  return cdf + x * pdf;
}
double gelu_tanh_grad(double x) {
  double t = std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
  double du_dx = kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * x * x);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx;
}

double add_fn(double a, double b) { return a + b; }
double sub_fn(double a, double b) { return a - b; }
double mul_fn(double a, double b) { return a * b; }
// On integer dtypes the quotient is truncated toward zero when stored (to_element), as C.
double div_fn(double a, double b) { return a / b; }
double pow_fn(double a, double b) { return std::pow(a, b); }
// NaN propagates, as PyTorch's maximum/minimum.
double maximum_fn(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? kNaN : (a > b ? a : b);
}
double minimum_fn(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? kNaN : (a < b ? a : b);
}
// Comparisons follow IEEE: anything compared with NaN is false, except ne.
double eq_fn(double a, double b) { return a == b; }
double ne_fn(double a, double b) { return a != b; }
double lt_fn(double a, double b) { return a < b; }
double le_fn(double a, double b) { return a <= b; }
double gt_fn(double a, double b) { return a > b; }
double ge_fn(double a, double b) { return a >= b; }

// --- kernels ----------------------------------------------------------------------------------

template <double (*Fn)(double)>
void unary_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]);
  for (double& v : x) v = Fn(v);
  store(c.output, x);
}

// Binary and compare: both inputs broadcast to the output shape; compare outputs are bool.
template <double (*Fn)(double, double)>
void binary_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  std::vector<double> a = load_broadcast(c.inputs[0], shape);
  std::vector<double> b = load_broadcast(c.inputs[1], shape);
  std::vector<double> out(a.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = Fn(a[i], b[i]);
  store(c.output, out);
}

// copy and cast: the output's dtype decides the conversion (to_element).
void copy_kernel(const KernelCall& c) { store(c.output, load(c.inputs[0])); }

void gelu_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]);
  for (double& v : x) v = c.attrs.gelu_tanh ? gelu_tanh(v) : gelu_erf(v);
  store(c.output, x);
}

// gelu_backward(x, dy) -> dy * gelu'(x); relu_backward(y, dy) -> dy where y > 0, else 0 (y is
// relu's output; NaN counts as not > 0).
template <Activation Act>
void activation_backward_kernel(const KernelCall& c) {
  std::vector<double> aux = load(c.inputs[0]);
  std::vector<double> dy = load(c.inputs[1]);
  for (size_t i = 0; i < aux.size(); ++i) dy[i] = activation_backward_fn(Act, c.attrs.gelu_tanh, aux[i], dy[i]);
  store(c.output, dy);
}

// where(cond, a, b): a where cond is true, else b; all three broadcast to the output shape.
void where_kernel(const KernelCall& c) {
  const Shape& shape = c.output.shape();
  std::vector<double> cond = load_broadcast(c.inputs[0], shape);
  std::vector<double> a = load_broadcast(c.inputs[1], shape);
  std::vector<double> b = load_broadcast(c.inputs[2], shape);
  std::vector<double> out(cond.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = cond[i] != 0 ? a[i] : b[i];
  store(c.output, out);
}

}  // namespace

double activation_backward_fn(Activation act, bool gelu_tanh_form, double aux, double dy) {
  switch (act) {
    case Activation::none: return dy;
    case Activation::relu: return aux > 0 ? dy : 0.0;  // a select: NaN/inf dy where y <= 0 gives 0
    case Activation::gelu: return dy * (gelu_tanh_form ? gelu_tanh_grad(aux) : gelu_erf_grad(aux));
  }
  return dy;
}

double activation_fn(Activation act, bool gelu_tanh_form, double x) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return relu_fn(x);
    case Activation::gelu: return gelu_tanh_form ? gelu_tanh(x) : gelu_erf(x);
  }
  return x;
}

std::vector<KernelEntry> elementwise_kernels() {
  return {
      {OpId::neg, unary_kernel<neg_fn>, kNumericDTypes},
      {OpId::abs, unary_kernel<abs_fn>, kNumericDTypes},
      {OpId::sign, unary_kernel<sign_fn>, kNumericDTypes},
      {OpId::exp, unary_kernel<exp_fn>, kFloatDTypes},
      {OpId::log, unary_kernel<log_fn>, kFloatDTypes},
      {OpId::sqrt, unary_kernel<sqrt_fn>, kFloatDTypes},
      {OpId::rsqrt, unary_kernel<rsqrt_fn>, kFloatDTypes},
      {OpId::tanh, unary_kernel<tanh_fn>, kFloatDTypes},
      {OpId::sigmoid, unary_kernel<sigmoid_fn>, kFloatDTypes},
      {OpId::relu, unary_kernel<relu_fn>, kNumericDTypes},
      {OpId::gelu, gelu_kernel, kFloatDTypes},
      {OpId::cast, copy_kernel, kEveryDType},
      {OpId::copy, copy_kernel, kEveryDType},
      {OpId::add, binary_kernel<add_fn>, kNumericDTypes},
      {OpId::sub, binary_kernel<sub_fn>, kNumericDTypes},
      {OpId::mul, binary_kernel<mul_fn>, kNumericDTypes},
      {OpId::div, binary_kernel<div_fn>, kNumericDTypes},
      {OpId::pow, binary_kernel<pow_fn>, kFloatDTypes},
      {OpId::maximum, binary_kernel<maximum_fn>, kEveryDType},
      {OpId::minimum, binary_kernel<minimum_fn>, kEveryDType},
      {OpId::eq, binary_kernel<eq_fn>, kEveryDType},
      {OpId::ne, binary_kernel<ne_fn>, kEveryDType},
      {OpId::lt, binary_kernel<lt_fn>, kEveryDType},
      {OpId::le, binary_kernel<le_fn>, kEveryDType},
      {OpId::gt, binary_kernel<gt_fn>, kEveryDType},
      {OpId::ge, binary_kernel<ge_fn>, kEveryDType},
      // Keyed on the condition's dtype (always bool); the data may be any dtype.
      {OpId::where, where_kernel, kBoolDType},
      {OpId::gelu_backward, activation_backward_kernel<Activation::gelu>, kFloatDTypes},
      {OpId::relu_backward, activation_backward_kernel<Activation::relu>, kNumericDTypes},
  };
}

}  // namespace gpuml::ref
