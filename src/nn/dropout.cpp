#include "nn/dropout.h"

#include <nlohmann/json.hpp>

#include "core/philox.h"

namespace gpuml::nn {

Dropout::Dropout(double p) : p_(p) {
  GPUML_CHECK(p_ >= 0 && p_ < 1, "Dropout: p must be in [0, 1), got {}", p_);
}

Sym Dropout::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  if (!ctx.training || p_ == 0) return x;
  uint64_t offset = ctx.rng_offset;
  ctx.rng_offset += philox_blocks(static_cast<uint64_t>(numel(x.shape())));
  return dropout(x, p_, ctx.dropout_seed, offset, true);
}

std::string Dropout::describe() const {
  return fmt::format("Dropout(p={})", p_);
}

nlohmann::json Dropout::to_json() const {
  nlohmann::json j = Module::to_json();
  j["p"] = p_;
  return j;
}

}  // namespace gpuml::nn
