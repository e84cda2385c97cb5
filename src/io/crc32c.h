// CRC-32C (Castagnoli), as TFRecord files (TensorBoard event files) use it.
//
//   uint32_t crc = crc32c(data, size);               // crc32c("123456789") == 0xE3069283
//   crc = crc32c(more, more_size, crc);               // continue over a second buffer
//   uint32_t stored = masked_crc32c(data, size);      // what a TFRecord frame holds
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpuml {

// Table-driven, one byte at a time: event files are small, so clarity beats SSE4.2.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

// TFRecord stores a rotated, offset CRC so that a CRC of data that itself contains CRCs does
// not degenerate: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
inline uint32_t mask_crc32c(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
inline uint32_t unmask_crc32c(uint32_t masked) {
  uint32_t rotated = masked - 0xa282ead8u;
  return (rotated >> 17) | (rotated << 15);
}
inline uint32_t masked_crc32c(const void* data, size_t size) {
  return mask_crc32c(crc32c(data, size));
}

}  // namespace gpuml
