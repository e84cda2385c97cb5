// Direct checks of the cpu backend's oneDNN paths against naive loops, before the op harness
// (tests/ops) compares every kernel with ref.
#include <gtest/gtest.h>

#include <random>

#include "backend/dispatch.h"

namespace gpuml {
namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_values(shape, v, DType::f32);
}

Backend& cpu() { return backend_registry().get("cpu"); }

TEST(CpuSmoke, DescriptionNamesOneDnn) {
  EXPECT_NE(cpu().description().find("oneDNN"), std::string::npos) << cpu().description();
}

TEST(CpuSmoke, MatmulTransposedBatchedMatchesLoop) {
  std::random_device rd;
  uint64_t seed = rd();
  // a (2, K=5, M=3) read transposed, b (N=4, K=5) read transposed: c (2, 3, 4).
  Tensor a = random_tensor({2, 5, 3}, seed), b = random_tensor({4, 5}, seed + 1);
  Attrs attrs;
  attrs.trans_a = true;
  attrs.trans_b = true;
  Tensor c = run_op(cpu(), OpId::matmul, {a, b}, attrs);
  ASSERT_EQ(c.shape(), (Shape{2, 3, 4}));
  for (int64_t bi = 0; bi < 2; ++bi)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        double expect = 0;
        for (int64_t k = 0; k < 5; ++k) expect += a.item_as_double(bi * 15 + k * 3 + i) * b.item_as_double(j * 5 + k);
        EXPECT_NEAR(c.item_as_double(bi * 12 + i * 4 + j), expect, 1e-4);
      }
}

TEST(CpuSmoke, Conv2dGroupsDilationMatchesLoop) {
  std::random_device rd;
  uint64_t seed = rd();
  const int64_t n = 2, c = 4, h = 7, w = 6, o = 6, groups = 2, k = 3;
  Tensor x = random_tensor({n, c, h, w}, seed), wt = random_tensor({o, c / groups, k, k}, seed + 1);
  Attrs attrs;
  attrs.stride = {2, 1};
  attrs.padding = {1, 2};
  attrs.dilation = {1, 2};
  attrs.groups = groups;
  Tensor y = run_op(cpu(), OpId::conv2d, {x, wt}, attrs);
  const Shape& ys = y.shape();
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t oi = 0; oi < o; ++oi)
      for (int64_t yi = 0; yi < ys[2]; ++yi)
        for (int64_t xi = 0; xi < ys[3]; ++xi) {
          double expect = 0;
          int64_t g = oi / (o / groups);
          for (int64_t ci = 0; ci < c / groups; ++ci)
            for (int64_t ki = 0; ki < k; ++ki)
              for (int64_t kj = 0; kj < k; ++kj) {
                int64_t r = yi * 2 - 1 + ki, col = xi - 2 + kj * 2;
                if (r < 0 || r >= h || col < 0 || col >= w) continue;
                expect += x.item_as_double(((ni * c + g * (c / groups) + ci) * h + r) * w + col) *
                          wt.item_as_double(((oi * (c / groups) + ci) * k + ki) * k + kj);
              }
          EXPECT_NEAR(y.item_as_double(((ni * o + oi) * ys[2] + yi) * ys[3] + xi), expect, 1e-4);
        }
}

TEST(CpuSmoke, MaxPoolBackwardRoutesToFirstMax) {
  // Two equal maxima in one 2x2 window: only the first (row-major) gets the gradient.
  Tensor x = Tensor::from_values({1, 1, 2, 2}, {1.0, 3.0, 3.0, 0.5}, DType::f32);
  Tensor dy = Tensor::from_values({1, 1, 1, 1}, {2.0}, DType::f32);
  Attrs attrs;
  attrs.kernel = {2, 2};
  attrs.stride = {2, 2};
  Tensor dx = run_op(cpu(), OpId::max_pool2d_backward, {x, dy}, attrs);
  EXPECT_EQ(dx.to_doubles(), (std::vector<double>{0.0, 2.0, 0.0, 0.0}));
}

}  // namespace
}  // namespace gpuml
