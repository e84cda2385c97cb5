// Reference random ops on the counter-based Philox stream (core/philox.h): element i (row-major
// output index) of a draw depends only on (seed, offset, i), so every backend draws the same.
#include "backend/ref/ref_kernels.h"
#include "core/philox.h"

namespace gpuml::ref {

namespace {

// dropout(x): with training and p > 0, element i is kept iff philox_uniform(seed, offset, i) >= p
// and kept values are scaled by 1 / (1 - p); otherwise an identity copy.
void dropout_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  std::vector<double> x = load(c.inputs[0]);
  if (a.training && a.p > 0.0) {
    for (size_t i = 0; i < x.size(); ++i) {
      bool keep = philox_uniform(a.seed, philox_offset(c), i) >= a.p;
      x[i] = keep ? x[i] / (1.0 - a.p) : 0.0;
    }
  }
  store(c.output, x);
}

// uniform: low + (high - low) * u with u in [0, 1); attrs.alpha = low, attrs.beta = high.
void uniform_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  std::vector<double> out(static_cast<size_t>(c.output.numel()));
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = a.alpha + (a.beta - a.alpha) * static_cast<double>(philox_uniform(a.seed, philox_offset(c), i));
  store(c.output, out);
}

// normal: mean + std * n with n standard normal; attrs.alpha = mean, attrs.beta = std.
void normal_kernel(const KernelCall& c) {
  const Attrs& a = c.attrs;
  std::vector<double> out(static_cast<size_t>(c.output.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = a.alpha + a.beta * philox_normal(a.seed, philox_offset(c), i);
  store(c.output, out);
}

}  // namespace

std::vector<KernelEntry> random_kernels() {
  return {
      {OpId::dropout, dropout_kernel, kFloatDTypes},
      // Creation-like: keyed on the output dtype.
      {OpId::uniform, uniform_kernel, kFloatDTypes},
      {OpId::normal, normal_kernel, kFloatDTypes},
  };
}

}  // namespace gpuml::ref
