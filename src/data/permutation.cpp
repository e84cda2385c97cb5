#include "data/permutation.h"

#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/philox.h"

namespace gpuml::data {

std::vector<int64_t> philox_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  GPUML_CHECK(n >= 0 && n < (int64_t{1} << 33), "philox_permutation: n = {} is out of range", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  const uint64_t offset = stream << 32;
  for (int64_t i = n - 1; i > 0; --i) {
    // Lanes (2i, 2i+1) share one Philox block, so each step costs one block.
    PhiloxBlock block = philox4x32_10(offset + static_cast<uint64_t>(i) / 2, seed);
    uint32_t lane = static_cast<uint32_t>(i % 2) * 2;
    uint64_t r = (static_cast<uint64_t>(block.v[lane]) << 32) | block.v[lane + 1];
    int64_t j = static_cast<int64_t>(r % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace gpuml::data
