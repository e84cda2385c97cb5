#include "data/batch_allocator.h"

#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gpuml::data {

namespace {

// Only blocks of the current upstream are cached: changing upstreams releases the cache, and a
// block of an earlier upstream goes straight back to it when freed.
class RecyclingHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    Allocator* from = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
        return p;
      }
      from = upstream_;
    }
    void* p = from->allocate(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    origin_[p] = from;
    return p;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (!ptr) return;
    Allocator* from = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = origin_.find(ptr);
      from = it != origin_.end() ? it->second : &host_allocator();
      if (from == upstream_ && cached_bytes_ + bytes <= kMaxCachedBytes) {
        free_[bytes].push_back(ptr);
        cached_bytes_ += bytes;
        return;
      }
      if (it != origin_.end()) origin_.erase(it);
    }
    from->deallocate(ptr, bytes);
  }

  Device device() const override { return host_allocator().device(); }

  void set_upstream(Allocator* upstream) {
    Allocator* previous = nullptr;
    std::unordered_map<size_t, std::vector<void*>> release;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Allocator* next = upstream ? upstream : &host_allocator();
      if (next == upstream_) return;
      previous = std::exchange(upstream_, next);
      release.swap(free_);  // every cached block is the previous upstream's
      for (const auto& [bytes, blocks] : release)
        for (void* p : blocks) origin_.erase(p);
      cached_bytes_ = 0;
    }
    for (const auto& [bytes, blocks] : release)
      for (void* p : blocks) previous->deallocate(p, bytes);
  }

 private:
  static constexpr size_t kMaxCachedBytes = size_t{64} << 20;
  std::mutex mutex_;
  Allocator* upstream_ = &host_allocator();
  std::unordered_map<size_t, std::vector<void*>> free_;  // bytes -> cached blocks of upstream_
  std::unordered_map<void*, Allocator*> origin_;         // every block handed out or cached
  size_t cached_bytes_ = 0;
};

RecyclingHostAllocator& instance() {
  // Never destroyed: a batch may be freed during static destruction, after any owner would be.
  static auto* allocator = new RecyclingHostAllocator;
  return *allocator;
}

}  // namespace

Allocator& batch_allocator() { return instance(); }

void set_batch_memory(Allocator* upstream) { instance().set_upstream(upstream); }

}  // namespace gpuml::data
