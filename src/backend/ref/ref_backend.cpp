// The reference backend: the executable specification. Plain loops, float64 accumulation, every
// op, every dtype the type rules allow. Never optimised; every other backend is tested against it.
// The kernels live in one file per op family (ref_*.cpp); ref_kernels.h has the shared helpers.
#include "backend/backend.h"
#include "backend/ref/ref_kernels.h"

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

RefBackend::RefBackend() {
  for (auto family : {ref::elementwise_kernels, ref::reduce_kernels, ref::matmul_conv_kernels,
                      ref::pool_kernels, ref::norm_loss_kernels, ref::movement_kernels,
                      ref::random_kernels, ref::optim_kernels, ref::attention_kernels,
                      ref::collective_kernels}) {
    for (const ref::KernelEntry& entry : family()) {
      GPUML_CHECK_KIND(ErrorKind::Internal, !supports(entry.op, entry.dtypes[0]),
                       "ref: {} registered twice", op_name(entry.op));
      for (DType dtype : entry.dtypes) register_kernel(entry.op, entry.fn, {dtype});
    }
  }
}
}  // namespace

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

}  // namespace gpuml
