#include "graph/executor.h"

#include <set>

#include "backend/dispatch.h"
#include "core/error.h"

namespace gpuml {

Executor::Executor(Plan plan) : plan_(std::move(plan)) {
  for (const ArenaPlan& a : plan_.arenas) {
    GPUML_CHECK(a.allocator != nullptr, "executor: no backend allocates memory on {}", a.device.str());
    arenas_.push_back(Storage::make(*a.allocator, a.peak_bytes));
  }
  values_.resize(plan_.values.size());
  for (size_t i = 0; i < plan_.values.size(); ++i) {
    const PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::Arena) continue;
    const std::shared_ptr<Storage>& arena = arenas_[v.arena];
    GPUML_CHECK_KIND(ErrorKind::Internal, v.offset + v.bytes <= arena->bytes(),
                     "executor: value v{} [{}, +{}) is outside its arena of {} bytes", i, v.offset, v.bytes,
                     arena->bytes());
    void* ptr = static_cast<char*>(arena->data()) + v.offset;
    auto storage = Storage::borrow(ptr, v.bytes, arena->device(), arena);
    values_[i] = Tensor(std::move(storage), v.type.shape, contiguous_strides(v.type.shape), 0, v.type.dtype);
  }
}

size_t Executor::arena_bytes() const {
  size_t total = 0;
  for (const auto& a : arenas_) total += a->bytes();
  return total;
}

// Feeds the plan does not use (pruned inputs) are ignored: one feed dict serves several plans.
void Executor::bind_feeds(const std::map<std::string, Tensor>& feeds) {
  for (size_t i = 0; i < plan_.values.size(); ++i) {
    const PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::External) continue;
    auto it = feeds.find(v.name);
    GPUML_CHECK(it != feeds.end(), "executor: missing feed for '{}' (expected {} {})", v.name,
                shape_str(v.type.shape), v.type.dtype);
    const Tensor& t = it->second;
    GPUML_CHECK(t.defined(), "executor: feed '{}' is an undefined tensor", v.name);
    GPUML_CHECK_SHAPE(t.shape() == v.type.shape, "executor: feed '{}' has shape {}, the graph expects {}", v.name,
                      shape_str(t.shape()), shape_str(v.type.shape));
    GPUML_CHECK_KIND(ErrorKind::DType, t.dtype() == v.type.dtype, "executor: feed '{}' is {}, the graph expects {}",
                     v.name, t.dtype(), v.type.dtype);
    // The plan assumed contiguous feeds in the memory of their home backend.
    bool in_place = t.is_contiguous() && t.device() == v.backend->device();
    values_[i] = in_place ? t : to_backend(t, *v.backend);
  }
}

void Executor::run_step(const PlanStep& step) {
  std::vector<Tensor> inputs;
  for (int in : step.inputs) inputs.push_back(values_[in]);
  switch (step.kind) {
    case StepKind::Kernel:
      step.backend->run(step.op, KernelCall{*step.backend, inputs, values_[step.output], step.attrs, nullptr});
      return;
    case StepKind::View: values_[step.output] = apply_view(inputs[0], step.op, step.attrs); return;
    case StepKind::Transfer: {
      const PlanValue& out = plan_.values[step.output];
      if (out.home == ValueHome::Alias) {  // same device: re-homed without a copy
        values_[step.output] = inputs[0];
        return;
      }
      const Tensor& src = inputs[0];
      const Tensor& dst = values_[step.output];
      // Ordering across backends: the source's work must be done before the copy reads it.
      step.source->synchronize();
      if (dst.device().is_host()) {
        step.source->copy_to_host(dst.raw_data(), src.raw_data(), src.nbytes());
        step.source->synchronize();
      } else if (src.device().is_host()) {
        step.backend->copy_to_device(dst.raw_data(), src.raw_data(), src.nbytes());
      } else {  // device to another device: stage through the host
        Tensor staging = Tensor::empty(src.shape(), src.dtype());
        step.source->copy_to_host(staging.raw_data(), src.raw_data(), src.nbytes());
        step.source->synchronize();
        step.backend->copy_to_device(dst.raw_data(), staging.raw_data(), staging.nbytes());
        step.backend->synchronize();
      }
      return;
    }
  }
}

namespace {

// A fresh contiguous host tensor: outputs must not alias the arena, which the next run reuses.
// Device values are read back through the backend that owns them (it need not be registered).
Tensor copy_out(const Tensor& t, Backend& owner) {
  if (t.device().is_host()) return to_backend(t, backend_registry().reference());
  Tensor src = t.is_contiguous() ? t : run_op(owner, OpId::copy, {t});
  Tensor out = Tensor::empty(src.shape(), src.dtype());
  owner.copy_to_host(out.raw_data(), src.raw_data(), src.nbytes());
  owner.synchronize();
  return out;
}

}  // namespace

std::vector<Tensor> Executor::run(const std::map<std::string, Tensor>& feeds) {
  bind_feeds(feeds);
  std::set<Backend*> used;
  for (const PlanStep& step : plan_.steps) {
    run_step(step);
    used.insert(step.backend);
  }
  for (Backend* b : used) b->synchronize();
  std::vector<Tensor> outputs;
  for (int v : plan_.outputs) outputs.push_back(copy_out(values_[v], *plan_.values[v].backend));
  // Drop per-run references so that feeds are not kept alive between runs.
  for (size_t i = 0; i < plan_.values.size(); ++i)
    if (plan_.values[i].home != ValueHome::Arena) values_[i] = Tensor();
  return outputs;
}

}  // namespace gpuml
