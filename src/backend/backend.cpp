#include "backend/backend.h"

#include <cstring>

#include "backend/plugin_loader.h"
#include "core/error.h"

namespace gpuml {

std::unique_ptr<Backend> make_ref_backend();
std::unique_ptr<Backend> make_cpu_backend();

void Backend::copy_to_device(void* dst, const void* src, size_t bytes, Stream*) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void Backend::copy_to_host(void* dst, const void* src, size_t bytes, Stream*) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void Backend::copy_within(void* dst, const void* src, size_t bytes, Stream*) {
  if (bytes) std::memmove(dst, src, bytes);
}

void Backend::begin_capture() {
  GPUML_FAIL(ErrorKind::Unsupported, "backend {} cannot capture work for replay", name());
}
std::unique_ptr<CapturedWork> Backend::end_capture() {
  GPUML_FAIL(ErrorKind::Unsupported, "backend {} cannot capture work for replay", name());
}

static uint32_t dtype_bit(DType d) { return 1u << static_cast<int>(d); }

void Backend::register_kernel(OpId op, KernelFn fn, std::initializer_list<DType> dtypes, bool strided_inputs) {
  Slot& slot = slots_[static_cast<int>(op)];
  slot.fn = fn;
  slot.strided_inputs = strided_inputs;
  for (DType d : dtypes) slot.dtype_mask |= dtype_bit(d);
}

bool Backend::supports(OpId op, DType dtype) const {
  const Slot& slot = slots_[static_cast<int>(op)];
  return slot.fn != nullptr && (slot.dtype_mask & dtype_bit(dtype)) != 0;
}

bool Backend::accepts_strided_inputs(OpId op) const { return slots_[static_cast<int>(op)].strided_inputs; }

std::vector<DType> Backend::supported_dtypes(OpId op) const {
  std::vector<DType> out;
  for (DType d : kAllDTypes)
    if (supports(op, d)) out.push_back(d);
  return out;
}

void Backend::run(OpId op, const KernelCall& call) const {
  DType d = call.inputs.empty() ? call.output.dtype() : call.inputs[0].dtype();
  GPUML_CHECK_KIND(ErrorKind::Unsupported, supports(op, d), "backend '{}' has no {} kernel for dtype {}",
                   name(), op_name(op), d);
  slots_[static_cast<int>(op)].fn(call);
}

DType dispatch_dtype_of(OpId op, std::span<const TensorType> inputs, const TensorType& output) {
  return inputs.empty() ? output.dtype : inputs[0].dtype;
}

void BackendRegistry::add(std::unique_ptr<Backend> backend) {
  GPUML_CHECK(find(backend->name()) == nullptr, "backend '{}' registered twice", backend->name());
  backends_.push_back(std::move(backend));
}

Backend* BackendRegistry::find(std::string_view name) const {
  for (const auto& b : backends_)
    if (b->name() == name) return b.get();
  return nullptr;
}

Backend& BackendRegistry::get(std::string_view name) const {
  Backend* b = find(name);
  if (!b) {
    std::vector<std::string> names;
    for (const auto& x : backends_) names.emplace_back(x->name());
    GPUML_FAIL(ErrorKind::Invalid, "no backend named '{}' (available: {})", name, fmt::join(names, ", "));
  }
  return *b;
}

std::vector<Backend*> BackendRegistry::all() const {
  std::vector<Backend*> out;
  for (const auto& b : backends_) out.push_back(b.get());
  return out;
}

BackendRegistry& backend_registry() {
  static BackendRegistry* registry = [] {
    auto* r = new BackendRegistry();
    // Fastest first: the GPU when the plugin loads and finds a device.
    PluginLoad cuda = load_cuda_plugin();
    if (cuda.backends.empty()) {
      r->set_cuda_status("not used: " + cuda.reason);
    } else {
      r->set_cuda_status("loaded from " + cuda.path);
      for (auto& b : cuda.backends) r->add(std::move(b));
    }
    r->add(make_cpu_backend());
    r->add(make_ref_backend());
    return r;
  }();
  return *registry;
}

}  // namespace gpuml
