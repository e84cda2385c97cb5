// Host memory for the loaders' batches, recycled: the buffer of a batch the trainer has finished
// with becomes the next batch's. Fresh 400 KiB blocks from malloc came back from the kernel each
// time (glibc trims a thread arena's heap as soon as its top is free), so every batch paid its
// page faults and zeroing (BENCHMARKS.md, issue 5).
//
// Each trainer owns one BatchMemory and hands it to its loaders (no process-wide pool: two
// trainers in one process, on a GPU and a CPU, keep apart). Training on a GPU, its blocks come
// from the device's pinned host allocator: a batch is then staged in page-locked memory as it is
// built, and its copy to the device is a DMA straight from it. Pinned allocations are slow, which
// recycling hides.
//
//   auto memory = data::BatchMemory::create(backend.pinned_host_allocator());  // nullptr: plain
//   Tensor x = memory->empty({128, 784}, DType::f32);   // its block comes back to `memory`
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace gpuml::data {

class BatchMemory : public std::enable_shared_from_this<BatchMemory> {
 public:
  // Blocks come from `upstream` (which must outlive every batch), or plain host memory for nullptr.
  static std::shared_ptr<BatchMemory> create(Allocator* upstream = nullptr);
  ~BatchMemory();
  BatchMemory(const BatchMemory&) = delete;
  BatchMemory& operator=(const BatchMemory&) = delete;

  // A contiguous tensor in a recycled block. The tensor keeps this pool alive: a batch may outlive
  // the loader and trainer that made it. Thread-safe (loaders build batches on their threads).
  Tensor empty(const Shape& shape, DType dtype);

  size_t cached_bytes() const;
  Allocator& upstream() const { return *upstream_; }

 private:
  explicit BatchMemory(Allocator* upstream);
  void* take(size_t bytes);
  void give_back(void* ptr, size_t bytes);

  // At most this many bytes of free blocks are kept, by exact size (a loader's batches share one
  // size, the last of an epoch aside).
  static constexpr size_t kMaxCachedBytes = size_t{64} << 20;
  Allocator* upstream_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // bytes -> cached blocks
  size_t cached_bytes_ = 0;
};

}  // namespace gpuml::data
