#include "io/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace gpuml {
namespace {

// Bit-at-a-time twin of the table-driven version.
uint32_t crc32c_bitwise(const std::string& s) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

TEST(IoCrc32c, KnownAnswers) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // RFC 3720 (iSCSI) B.4 test vectors.
  std::string zeros(32, '\0'), ones(32, '\xff'), ascending(32, '\0'), descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(ascending.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending.data(), 32), 0x113FDB5Cu);
}

TEST(IoCrc32c, MatchesBitwiseTwinAndExtendsAcrossBuffers) {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 20; ++trial) {
    std::string data(1 + rng() % 3000, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    const uint32_t whole = crc32c(data.data(), data.size());
    EXPECT_EQ(whole, crc32c_bitwise(data));
    size_t cut = rng() % data.size();
    EXPECT_EQ(crc32c(data.data() + cut, data.size() - cut, crc32c(data.data(), cut)), whole);
  }
}

TEST(IoCrc32c, MaskIsTheTfRecordRotationAndInvertible) {
  const uint32_t crc = crc32c("123456789", 9);
  EXPECT_EQ(mask_crc32c(crc), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
  EXPECT_NE(mask_crc32c(crc), crc);
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 100; ++i) {
    uint32_t v = rng();
    EXPECT_EQ(unmask_crc32c(mask_crc32c(v)), v);
  }
  EXPECT_EQ(masked_crc32c("123456789", 9), mask_crc32c(crc));
}

}  // namespace
}  // namespace gpuml
