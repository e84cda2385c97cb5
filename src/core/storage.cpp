#include "core/storage.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace gpuml {

namespace {
class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    void* p = std::aligned_alloc(kHostAlignment, rounded == 0 ? kHostAlignment : rounded);
    GPUML_CHECK_KIND(ErrorKind::OutOfMemory, p != nullptr, "host allocation of {} bytes failed", bytes);
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
  Device device() const override { return {}; }
};
}  // namespace

Allocator& host_allocator() {
  static HostAllocator allocator;
  return allocator;
}

std::shared_ptr<Storage> Storage::make(Allocator& allocator, size_t bytes) {
  std::shared_ptr<Storage> s(new Storage());
  s->ptr_ = allocator.allocate(bytes);
  s->bytes_ = bytes;
  s->device_ = allocator.device();
  s->owner_ = &allocator;
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* ptr, size_t bytes, Device device,
                                         std::shared_ptr<void> keep_alive) {
  std::shared_ptr<Storage> s(new Storage());
  s->ptr_ = ptr;
  s->bytes_ = bytes;
  s->device_ = device;
  s->keep_alive_ = std::move(keep_alive);
  return s;
}

Storage::~Storage() {
  if (owner_ && ptr_) owner_->deallocate(ptr_, bytes_);
}

}  // namespace gpuml
