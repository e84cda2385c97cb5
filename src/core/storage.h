// Reference-counted memory. An Allocator (a backend) owns how bytes are made and freed;
// Storage only remembers who to give them back to.
//
//   auto s = Storage::make(host_allocator(), 1024);   // 64-byte aligned
//   float* p = static_cast<float*>(s->data());
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace gpuml {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;
};

// 64-byte aligned host memory (a cache line, an AVX-512 register).
Allocator& host_allocator();
inline constexpr size_t kHostAlignment = 64;

class Storage {
 public:
  // Owning storage, freed through `allocator` when the last reference goes.
  static std::shared_ptr<Storage> make(Allocator& allocator, size_t bytes);
  // Non-owning storage over memory someone else keeps alive (an arena slice, a mapped file).
  static std::shared_ptr<Storage> borrow(void* ptr, size_t bytes, Device device,
                                         std::shared_ptr<void> keep_alive = {});
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Storage() = default;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  Allocator* owner_ = nullptr;
  std::shared_ptr<void> keep_alive_;
};

}  // namespace gpuml
