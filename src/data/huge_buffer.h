// A large buffer of the streaming loader (shuffle slots, read-ahead shards) in anonymous memory,
// 2 MiB-aligned (what O_DIRECT and transparent huge pages both want).
//
// The shuffle buffer is gigabytes read at random, one record at a time: with 4 KiB pages nearly
// every record is a TLB miss and a page walk. With THP in "madvise" mode (Debian's default) the
// region is backed by 2 MiB pages once it is marked before first touch. Pages fault in on first
// use, or all at once when reserve() is asked to populate them (the ShardLoader does so for its
// shuffle slots at setup). Where THP is off the buffer works the same, with 4 KiB pages.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpuml::data {

class HugeBuffer {
 public:
  HugeBuffer() = default;
  ~HugeBuffer();
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  // Makes the buffer at least `bytes` long. Growing discards the contents. huge_pages: ask for
  // 2 MiB pages (honoured from 64 MiB up), for buffers read at random. populate: fault every
  // page in now (zeroing gigabytes takes seconds, on a VM more: better before the first epoch
  // than in the middle of it).
  void reserve(size_t bytes, bool huge_pages = false, bool populate = false);
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }

 private:
  void release();
  void* base_ = nullptr;  // the mapping, which starts up to 2 MiB before data_
  size_t mapped_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;       // usable bytes from data_
};

}  // namespace gpuml::data
