// The cpu backend: oneDNN for matmul, convolution and pooling; OpenMP loops for the rest.
#include "backend/backend.h"

namespace gpuml {

namespace {
class CpuBackend final : public Backend {
 public:
  CpuBackend();
  std::string_view name() const override { return "cpu"; }
  std::string description() const override { return "oneDNN + OpenMP"; }
  Device device() const override { return {}; }
  void* allocate(size_t bytes) override { return host_allocator().allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { host_allocator().deallocate(p, bytes); }
};
CpuBackend::CpuBackend() {}
}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace gpuml
