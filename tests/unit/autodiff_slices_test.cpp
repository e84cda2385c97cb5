// Autodiff of a value read through several slices of one axis (graph/autodiff.cpp): when the
// slices tile the axis end to end, the gradient is one concat of the slices' gradients instead of
// zero-padded slice_backwards summed by adds (a GPT's q, k and v cut from one qkv product); when
// they overlap or leave a gap, the sum stands. Either way the gradient is 2 x r on each slice's
// columns (summed where slices overlap, zero in a gap), on ref and on cpu.
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <utility>

#include "backend/dispatch.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "graph_test_util.h"

namespace gpuml {
namespace {

using testing::expect_close;
using testing::random_tensor;

constexpr int64_t kRows = 4, kCols = 9;

// loss = sum over slices of sum(s * s * r[slice]): d loss / d x = 2 x r on every slice's columns.
struct SlicedLoss {
  explicit SlicedLoss(const std::vector<std::pair<int64_t, int64_t>>& ranges) : ranges(ranges) {
    x = g.input("x", {{kRows, kCols}, DType::f64});
    r = g.input("r", {{kRows, kCols}, DType::f64});
    std::optional<Sym> total;
    for (auto [start, end] : ranges) {
      Sym s = slice(x, 1, start, end);
      Sym term = sum(mul(mul(s, s), slice(r, 1, start, end)));
      total = total ? add(*total, term) : term;
    }
    loss = *total;
    grad = gradients(g, loss, {x})[0];
  }
  Tensor want(const Tensor& xv, const Tensor& rv) const {
    std::vector<double> xs = xv.to_doubles(), rs = rv.to_doubles(), out(xs.size(), 0.0);
    for (auto [start, end] : ranges)
      for (int64_t i = 0; i < kRows; ++i)
        for (int64_t j = start; j < end; ++j) out[i * kCols + j] += 2 * xs[i * kCols + j] * rs[i * kCols + j];
    return Tensor::from_values({kRows, kCols}, out, DType::f64);
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  Graph g;
  Sym x, r, loss, grad;
};

int kernel_steps(const Plan& plan, OpId op) {
  int n = 0;
  for (const PlanStep& s : plan.steps) n += s.kind == StepKind::Kernel && s.op == op;
  return n;
}

void check(const std::vector<std::pair<int64_t, int64_t>>& ranges, bool joined) {
  std::mt19937_64 rng(std::random_device{}());
  for (const char* name : {"ref", "cpu"}) {
    SCOPED_TRACE(name);
    SlicedLoss m(ranges);
    PlanOptions options;
    options.backends = {&backend_registry().get(name)};
    Plan plan = plan_graph(m.g, {m.grad}, options);
    SCOPED_TRACE(plan.to_string());
    EXPECT_EQ(kernel_steps(plan, OpId::concat), joined ? 1 : 0);
    EXPECT_EQ(kernel_steps(plan, OpId::slice_backward), joined ? 0 : static_cast<int>(ranges.size()));
    Tensor xv = random_tensor({kRows, kCols}, rng, DType::f64), rv = random_tensor({kRows, kCols}, rng, DType::f64);
    std::vector<Tensor> got = Executor(std::move(plan)).run({{"x", xv}, {"r", rv}});
    ASSERT_EQ(got.size(), 1u);
    expect_close(got[0], m.want(xv, rv), 1e-12);
  }
}

TEST(AutodiffSlices, SlicesTilingAnAxisGetOneConcat) { check({{6, 9}, {0, 2}, {2, 6}}, true); }

TEST(AutodiffSlices, OverlappingSlicesKeepTheSum) { check({{0, 5}, {4, 9}}, false); }

TEST(AutodiffSlices, SlicesWithAGapKeepTheSum) { check({{0, 2}, {5, 9}}, false); }

TEST(AutodiffSlices, OneSliceKeepsItsSliceBackward) { check({{0, 9}}, false); }

}  // namespace
}  // namespace gpuml
