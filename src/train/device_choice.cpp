#include "train/device_choice.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace gpuml {

PlanOptions plan_options_for_device(const std::string& device, int local_rank) {
  BackendRegistry& registry = backend_registry();
  PlanOptions p;
  if (device == "cpu") {  // never loads the CUDA plugin (no context, handles or pinned memory on the GPUs)
    p.backends = {&registry.get("cpu"), &registry.reference()};
    return p;
  }
  if (device == "ref") {
    p.backends = {&registry.reference()};
    return p;
  }
  std::vector<Backend*> gpus;  // the device backends (the CUDA plugin's), if it loaded
  for (Backend* b : registry.all())
    if (!b->device().is_host()) gpus.push_back(b);
  Backend* gpu = gpus.empty() ? nullptr : gpus[static_cast<size_t>(std::max(local_rank, 0)) % gpus.size()];
  if ((device == "auto" || device == "cuda") && gpu) {
    // The GPU when there is one (a cost-based choice comes later); cpu and ref fill its gaps.
    p.backends = {gpu, &registry.get("cpu"), &registry.reference()};
  } else if (device == "auto") {
    p.backends = {&registry.get("cpu"), &registry.reference()};
  } else {
    Device d = Device::parse(device);  // throws on anything that is not cpu/cuda[:N]
    Backend* cuda = nullptr;
    for (Backend* b : registry.all())
      if (b->device() == d) cuda = b;
    GPUML_CHECK_KIND(ErrorKind::Unsupported, cuda != nullptr,
                     "--device {}: no CUDA backend: CUDA {} (see `gpuml info`); use --device cpu", device,
                     registry.cuda_status());
    p.backends = {cuda, &registry.get("cpu"), &registry.reference()};
  }
  return p;
}

std::string device_used(const PlanOptions& plan, const std::string& requested) {
  const Backend& b = *plan.backends.front();
  const std::string used = b.device().is_host() ? std::string(b.name()) : b.device().str();
  return used == requested ? used : fmt::format("{} (--device {})", used, requested);
}

}  // namespace gpuml
