// CRC-32C of shard files, fast enough to check every shard on every read: the SSE4.2 crc32
// instruction where the CPU has it (several GB/s), else a slicing-by-8 table. Values equal
// io/crc32c.h's crc32c() (tested), which stays the simple one-byte-at-a-time twin.
//
//   uint32_t crc = data::shard_crc32c(buffer, size);
//   crc = data::shard_crc32c(more, more_size, crc);   // continue over a second buffer
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpuml::data {

uint32_t shard_crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace gpuml::data
