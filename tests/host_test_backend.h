// A backend for tests that lives in host memory and registers only the kernels a test gives it
// (to make plans that fall back, defer errors, count copies or capture work).
//
//   class ReluOnly final : public HostTestBackend {
//    public:
//     ReluOnly() : HostTestBackend("relu-only") { register_kernel(OpId::relu, relu_kernel, {DType::f64}); }
//   };
#pragma once

#include <string>
#include <utility>

#include "backend/backend.h"

namespace gpuml {

class HostTestBackend : public Backend {
 public:
  // `device`: what it claims to be (host memory either way), e.g. a fake cuda device.
  explicit HostTestBackend(std::string name, Device device = Device{}) : name_(std::move(name)), device_(device) {}
  std::string_view name() const override { return name_; }
  std::string description() const override { return "test backend"; }
  Device device() const override { return device_; }
  void* allocate(size_t bytes) override { return host_allocator().allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { host_allocator().deallocate(p, bytes); }

 private:
  std::string name_;
  Device device_;
};

}  // namespace gpuml
