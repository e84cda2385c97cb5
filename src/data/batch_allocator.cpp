#include "data/batch_allocator.h"

#include <mutex>
#include <unordered_map>
#include <vector>

namespace gpuml::data {

namespace {

class RecyclingHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
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
    return host_allocator().allocate(bytes);
  }

  void deallocate(void* ptr, size_t bytes) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + bytes <= kMaxCachedBytes) {
        free_[bytes].push_back(ptr);
        cached_bytes_ += bytes;
        return;
      }
    }
    host_allocator().deallocate(ptr, bytes);
  }

  Device device() const override { return host_allocator().device(); }

 private:
  static constexpr size_t kMaxCachedBytes = size_t{64} << 20;
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

}  // namespace

Allocator& batch_allocator() {
  // Never destroyed: a batch may be freed during static destruction, after any owner would be.
  static auto* allocator = new RecyclingHostAllocator;
  return *allocator;
}

}  // namespace gpuml::data
