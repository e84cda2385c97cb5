#include "data/batch_allocator.h"

#include <algorithm>

namespace gpuml::data {

std::shared_ptr<BatchMemory> BatchMemory::create(Allocator* upstream) {
  return std::shared_ptr<BatchMemory>(new BatchMemory(upstream));
}

BatchMemory::BatchMemory(Allocator* upstream) : upstream_(upstream ? upstream : &host_allocator()) {}

BatchMemory::~BatchMemory() {
  for (const auto& [bytes, blocks] : free_)
    for (void* p : blocks) upstream_->deallocate(p, bytes);
}

void* BatchMemory::take(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(bytes);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= bytes;
      return p;
    }
  }
  return upstream_->allocate(bytes);
}

void BatchMemory::give_back(void* ptr, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + bytes <= kMaxCachedBytes) {
      free_[bytes].push_back(ptr);
      cached_bytes_ += bytes;
      return;
    }
  }
  upstream_->deallocate(ptr, bytes);
}

size_t BatchMemory::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

Tensor BatchMemory::empty(const Shape& shape, DType dtype) {
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(numel(shape)) * dtype_size(dtype));
  void* ptr = take(bytes);
  // The deleter holds the pool, so a batch freed after its loader still has somewhere to go.
  std::shared_ptr<void> block(ptr, [pool = shared_from_this(), bytes](void* p) { pool->give_back(p, bytes); });
  auto storage = Storage::borrow(ptr, bytes, host_allocator().device(), std::move(block));
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

}  // namespace gpuml::data
