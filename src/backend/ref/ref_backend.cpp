// The reference backend: the executable specification. Plain loops, float64 accumulation, every
// op, every dtype the type rules allow. Never optimised; every other backend is tested against it.
#include "backend/backend.h"

namespace gpuml {

namespace {
class RefBackend final : public Backend {
 public:
  RefBackend();
  std::string_view name() const override { return "ref"; }
  std::string description() const override { return "reference loops, float64 accumulation"; }
  Device device() const override { return {}; }
  void* allocate(size_t bytes) override { return host_allocator().allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { host_allocator().deallocate(p, bytes); }
};
RefBackend::RefBackend() {}
}  // namespace

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

}  // namespace gpuml
