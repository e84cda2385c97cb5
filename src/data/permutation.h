// Seeded permutations from the counter-based Philox generator: the permutation for
// (seed, stream) is a pure function of those two numbers, so a loader can rebuild the order of
// any epoch (for resume) without replaying the ones before it.
//
//   std::vector<int64_t> order = data::philox_permutation(60000, seed, /*stream=*/epoch);
#pragma once

#include <cstdint>
#include <vector>

namespace gpuml::data {

// Streams at or above this are reserved for uses other than epochs (the train/val split).
inline constexpr uint64_t kSplitStream = 0xFFFFFFFFull;

// Fisher-Yates: position i (from n-1 down) swaps with j = r mod (i+1), r a 64-bit Philox draw
// (the modulo bias, below n/2^64, is far under anything measurable). Stream s uses Philox
// blocks from s * 2^32 on, so streams never overlap for n < 2^33.
std::vector<int64_t> philox_permutation(int64_t n, uint64_t seed, uint64_t stream);

}  // namespace gpuml::data
