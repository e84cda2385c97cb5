// Dropout of a strided view (a transposed tensor) equals dropout of its contiguous copy on the
// cpu backend and on ref: the cpu kernel reads its input by flat index, so it takes contiguous
// inputs (the dispatcher copies a view first). Found while the attention op was built.
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "backend/dispatch.h"

namespace gpuml {
namespace {

TEST(CpuDropout, AStridedViewGivesWhatItsContiguousCopyGives) {
  std::mt19937_64 rng(4);
  std::vector<double> v(6 * 40);
  for (double& e : v) e = std::uniform_real_distribution<double>(-1, 1)(rng);
  Tensor x = Tensor::from_values({6, 40}, v, DType::f32);
  Tensor view = x.permute({1, 0});  // (40, 6), strided
  Attrs a;
  a.p = 0.3;
  a.training = true;
  a.seed = 9;
  for (const char* name : {"cpu", "ref"}) {
    Backend& b = backend_registry().get(name);
    Tensor from_view = run_op(b, OpId::dropout, {view}, a);
    Tensor from_copy = run_op(b, OpId::dropout, {contiguous(view, b)}, a);
    EXPECT_EQ(from_view.to_doubles(), from_copy.to_doubles()) << name;
  }
}

}  // namespace
}  // namespace gpuml
