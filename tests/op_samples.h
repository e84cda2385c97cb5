// The op test table: sample inputs for every op in the op table (OpInfo-style). The op harness
// (every op x dtype x backend against ref) and the gradient check both read it; a test fails if
// an op has no row here.
//
//   for (const OpSample& s : op_samples())
//     std::vector<Tensor> xs = make_sample_inputs(s, DType::f32, /*seed*/ 7);
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/attrs.h"
#include "ops/op_table.h"

namespace gpuml::testing {

// What values an input holds. Never zeros: random on every run seed.
enum class Domain {
  Real,      // normal(0, 1); integers in [-5, 5]
  Positive,  // in [0.5, 2]
  Bool,      // random bools (dtype bool whatever is tested)
  Index,     // i64 in [0, bound)
  Label,     // i64 in [0, bound), with some entries = attrs.ignore_index when `bound2` is set
  ZeroOne,   // 0 or 1 in the tested dtype, both present (the optimizers' decay mask)
};

struct InputSpec {
  Shape shape;
  Domain domain = Domain::Real;
  int64_t bound = 0;
  bool with_ignored = false;  // Label: sprinkle ignore_index
  bool strided = false;       // pass a non-contiguous view (a strided slice of a bigger buffer)
  bool stats = false;         // f32 whatever float dtype is tested, f64 for f64 (layer_norm's kept mean, rstd)
};

struct OpSample {
  OpId op;
  std::string label;
  std::vector<InputSpec> inputs;
  Attrs attrs;
};

const std::vector<OpSample>& op_samples();

// Host tensors for a sample: data inputs in `dtype`, indices i64, conditions bool.
std::vector<Tensor> make_sample_inputs(const OpSample& sample, DType dtype, uint64_t seed);

// Per-dtype tolerance for comparing a backend against ref.
double tolerance_for(DType dtype);

// |got - want| <= tol * (1 + |want|), NaN only where ref has NaN, infinities equal; the op
// harness and the CUDA op tests compare a backend's result with ref's through it.
::testing::AssertionResult all_close(const Tensor& got, const Tensor& want, double tol);

}  // namespace gpuml::testing
