// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator, so element i of a draw is a pure function of (seed, offset, i).
// Every backend, CUDA included, uses these functions and so draws the same numbers.
//
//   float u = philox_uniform(seed, offset, i);   // in [0, 1)
//   float n = philox_normal(seed, offset, i);    // standard normal
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace gpuml {

struct PhiloxBlock {
  uint32_t v[4];
};

// The full generator: a 128-bit counter and a 64-bit key (Random123's philox4x32_10).
GPUML_HD PhiloxBlock philox4x32_10(PhiloxBlock counter, uint32_t key0, uint32_t key1) {
  uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  uint32_t k0 = key0, k1 = key1;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// gpuml's use: the 64-bit block number in the low counter words, the seed as the key.
GPUML_HD PhiloxBlock philox4x32_10(uint64_t counter, uint64_t seed) {
  PhiloxBlock c{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Element i of the stream (seed, offset) is lane i % 4 of block offset + i / 4.
GPUML_HD uint32_t philox_bits(uint64_t seed, uint64_t offset, uint64_t i) {
  return philox4x32_10(offset + i / 4, seed).v[i % 4];
}

// 24 random bits (the top of a lane) -> a float in [0, 1) that is exact in f32. Kernels that draw
// a run of elements take a whole block of 4 lanes at once and convert each lane with this.
GPUML_HD float philox_uniform_of_bits(uint32_t lane_bits) {
  return static_cast<float>(lane_bits >> 8) * (1.0f / 16777216.0f);
}
GPUML_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return philox_uniform_of_bits(philox_bits(seed, offset, i));
}

// Box-Muller on lanes (0,1) and (2,3) of a block, in double so that backends agree.
GPUML_HD double philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  PhiloxBlock b = philox4x32_10(offset + i / 4, seed);
  uint32_t lane = static_cast<uint32_t>(i % 4);
  uint32_t pair = lane / 2;
  double u1 = (static_cast<double>(b.v[2 * pair] >> 8) + 1.0) * (1.0 / 16777216.0);  // (0, 1]
  double u2 = static_cast<double>(b.v[2 * pair + 1] >> 8) * (1.0 / 16777216.0);      // [0, 1)
  double r = std::sqrt(-2.0 * std::log(u1));
  double theta = 6.283185307179586 * u2;
  return (lane % 2 == 0) ? r * std::cos(theta) : r * std::sin(theta);
}

// How many counter blocks a draw of n elements consumes: the next draw's offset moves by this.
GPUML_HD uint64_t philox_blocks(uint64_t n) { return (n + 3) / 4; }

}  // namespace gpuml
