#include "data/batch_allocator.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gpuml::data {

namespace {

class RecyclingHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    Allocator* from = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      from = upstream_;
      auto it = free_.find({from, bytes});
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
        return p;
      }
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
        free_[{from, bytes}].push_back(ptr);
        cached_bytes_ += bytes;
        return;
      }
      if (it != origin_.end()) origin_.erase(it);
    }
    from->deallocate(ptr, bytes);
  }

  Device device() const override { return host_allocator().device(); }

  void set_upstream(Allocator* upstream) {
    std::vector<std::pair<Allocator*, std::pair<void*, size_t>>> release;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      upstream_ = upstream ? upstream : &host_allocator();
      for (auto it = free_.begin(); it != free_.end();) {  // cached blocks of other upstreams go back
        if (it->first.first == upstream_) {
          ++it;
          continue;
        }
        for (void* p : it->second) {
          release.push_back({it->first.first, {p, it->first.second}});
          origin_.erase(p);
          cached_bytes_ -= it->first.second;
        }
        it = free_.erase(it);
      }
    }
    for (auto& [from, block] : release) from->deallocate(block.first, block.second);
  }

 private:
  static constexpr size_t kMaxCachedBytes = size_t{64} << 20;
  std::mutex mutex_;
  Allocator* upstream_ = &host_allocator();
  std::map<std::pair<Allocator*, size_t>, std::vector<void*>> free_;  // (upstream, bytes) -> blocks
  std::unordered_map<void*, Allocator*> origin_;                      // every block handed out or cached
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
