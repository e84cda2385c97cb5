#include "graph/placement.h"

#include <string_view>

#include "core/error.h"

namespace gpuml {

Placement::Placement(std::vector<Backend*> backends) : backends_(std::move(backends)) {
  if (backends_.empty()) backends_ = backend_registry().all();
  GPUML_CHECK(!backends_.empty(), "plan_graph: no backends to place ops on");
}

Backend* Placement::first_supporting(OpId op, DType dtype) const {
  for (Backend* b : backends_)
    if (b->supports(op, dtype)) return b;
  return nullptr;
}

Backend& Placement::place(OpId op, DType dtype) const {
  if (Backend* b = first_supporting(op, dtype)) return *b;
  std::vector<std::string_view> names;
  for (Backend* b : backends_) names.push_back(b->name());
  GPUML_FAIL(ErrorKind::Unsupported, "plan_graph: no backend among [{}] has a {} kernel for {}",
             fmt::join(names, ", "), op_name(op), dtype);
}

bool Placement::fuses_in_place(OpId fused, OpId op, DType dtype) const {
  Backend* b = first_supporting(fused, dtype);
  return b != nullptr && b == first_supporting(op, dtype);
}

Backend* Placement::copier_on(const Device& device, DType dtype) const {
  for (Backend* b : backends_)
    if (b->device() == device && b->supports(OpId::copy, dtype)) return b;
  return nullptr;
}

Backend* Placement::allocator_of(const Device& device) const {
  for (Backend* b : backends_)
    if (b->device() == device) return b;
  return nullptr;
}

}  // namespace gpuml
