// The DRELU layout probe's numbers (backend/cuda/drelu_probe.h), checked without a GPU: each mask
// bit it reads must be visible in the result, i.e. no product entry is 0, and every mask row has
// set and clear bits in both of its 128-bit words.
#include <gtest/gtest.h>

#include "backend/cuda/drelu_probe.h"

namespace gpuml::cuda {
namespace {

TEST(CudaDreluProbe, EveryMaskBitChangesTheResult) {
  const DreluProbe p = make_drelu_probe();
  ASSERT_EQ(p.product.size(), static_cast<size_t>(p.m * p.n));
  for (int64_t i = 0; i < p.m; ++i) {
    int set[2] = {0, 0}, clear[2] = {0, 0};
    for (int64_t j = 0; j < p.n; ++j) {
      const size_t at = static_cast<size_t>(i * p.n + j);
      EXPECT_NE(p.product[at], 0.0) << "row " << i << " column " << j << ": its mask bit is not tested";
      (p.y[at] > 0 ? set : clear)[j >= 128]++;
    }
    for (int word = 0; word < 2; ++word) {
      EXPECT_GT(set[word], 0) << "row " << i << " word " << word;
      EXPECT_GT(clear[word], 0) << "row " << i << " word " << word;
    }
  }
}

}  // namespace
}  // namespace gpuml::cuda
