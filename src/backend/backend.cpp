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

void Backend::register_shape_limit(OpId op, ShapePredicate accepts) { slots_[static_cast<int>(op)].accepts = accepts; }

bool Backend::supports(const OpQuery& query) const {
  if (!supports(query.op, dispatch_dtype_of(query.op, query.inputs, query.output))) return false;
  const ShapePredicate accepts = slots_[static_cast<int>(query.op)].accepts;
  return accepts == nullptr || accepts(query);
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
  GPUML_CHECK_KIND(ErrorKind::Internal, static_cast<int>(call.extra_outputs.size()) + 1 == op_info(op).outputs,
                   "{} has {} outputs, the call gives {}", op_name(op), op_info(op).outputs,
                   call.extra_outputs.size() + 1);
  const Slot& slot = slots_[static_cast<int>(op)];
  // Only ops with a limit pay for building the query.
  GPUML_CHECK_KIND(ErrorKind::Unsupported, slot.accepts == nullptr || slot.accepts(query_of(op, call)),
                   "backend '{}' has no {} kernel for these shapes and attributes (output {}): its shape limit "
                   "refuses them; the planner places such steps elsewhere",
                   name(), op_name(op), shape_str(call.output.shape()));
  slot.fn(call);
}

DType dispatch_dtype_of(OpId op, std::span<const TensorType> inputs, const TensorType& output) {
  return inputs.empty() ? output.dtype : inputs[0].dtype;
}

OpQuery query_of(OpId op, const KernelCall& call) {
  OpQuery q{op, {}, {call.output.shape(), call.output.dtype()}, call.attrs};
  for (const Tensor& t : call.inputs) q.inputs.push_back({t.shape(), t.dtype()});
  return q;
}

void BackendRegistry::add(std::unique_ptr<Backend> backend) {
  for (const auto& b : backends_) GPUML_CHECK(b->name() != backend->name(), "backend '{}' registered twice", backend->name());
  backends_.push_back(std::move(backend));
}

Backend* BackendRegistry::find(std::string_view name) const {
  if (name.starts_with("cuda")) load_cuda();
  if (cuda_tried_.load())
    for (const auto& b : cuda_backends_)
      if (b->name() == name) return b.get();
  for (const auto& b : backends_)
    if (b->name() == name) return b.get();
  return nullptr;
}

void BackendRegistry::load_cuda() const {
  std::call_once(cuda_once_, [this] {
    PluginLoad cuda = load_cuda_plugin();
    if (cuda.backends.empty()) {
      cuda_status_ = "not used: " + cuda.reason;
    } else {
      cuda_status_ = "loaded from " + cuda.path;
      cuda_backends_ = std::move(cuda.backends);
    }
    cuda_tried_.store(true);
  });
}

const std::string& BackendRegistry::cuda_status() const {
  load_cuda();
  return cuda_status_;
}

std::vector<Backend*> BackendRegistry::loaded() const {
  std::vector<Backend*> out;
  if (cuda_tried_.load())
    for (const auto& b : cuda_backends_) out.push_back(b.get());  // fastest first
  for (const auto& b : backends_) out.push_back(b.get());
  return out;
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
  load_cuda();
  return loaded();
}

BackendRegistry& backend_registry() {
  static BackendRegistry* registry = [] {
    auto* r = new BackendRegistry();
    // The CUDA plugin's backends come first once loaded (load_cuda), on first need.
    r->add(make_cpu_backend());
    r->add(make_ref_backend());
    return r;
  }();
  return *registry;
}

}  // namespace gpuml
