#include "nn/layer_norm.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : normalized_(std::move(normalized_shape)), eps_(eps), affine_(elementwise_affine) {
  GPUML_CHECK(!normalized_.empty(), "LayerNorm: normalized_shape must not be empty");
  for (int64_t d : normalized_)
    GPUML_CHECK(d > 0, "LayerNorm: normalized_shape {} must be positive", shape_str(normalized_));
  GPUML_CHECK(eps_ > 0, "LayerNorm: eps must be > 0, got {}", eps_);
}

Sym LayerNorm::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  Sym weight, bias;
  if (affine_) {
    weight = ctx.get(join_name(prefix, "weight"), normalized_);
    bias = ctx.get(join_name(prefix, "bias"), normalized_);
  } else {  // the op always scales and shifts: feed the identity
    weight = fill(ctx.graph, normalized_, 1.0, x.dtype());
    bias = fill(ctx.graph, normalized_, 0.0, x.dtype());
  }
  int64_t first_axis = x.ndim() - static_cast<int64_t>(normalized_.size());
  return layer_norm(x, weight, bias, first_axis, eps_);
}

void LayerNorm::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  if (!affine_) return;
  out.push_back({join_name(prefix, "weight"), normalized_});
  out.push_back({join_name(prefix, "bias"), normalized_});
}

void LayerNorm::init(const std::string& prefix, ParamInitializer& initializer) const {
  if (!affine_) return;
  initializer.constant(join_name(prefix, "weight"), normalized_, 1.0);
  initializer.constant(join_name(prefix, "bias"), normalized_, 0.0);
}

Shape LayerNorm::output_shape(const Shape& in) const {
  bool fits = in.size() >= normalized_.size() &&
              std::equal(normalized_.begin(), normalized_.end(),
                         in.end() - static_cast<int64_t>(normalized_.size()));
  GPUML_CHECK(fits,
              "normalized_shape {} does not match the trailing dims of the per-sample input {}",
              shape_str(normalized_), shape_str(in));
  return in;
}

int64_t LayerNorm::flops(const Shape& in) const {
  return 5 * numel(in);
}  // mean, var, normalise, scale, shift

std::string LayerNorm::describe() const {
  return fmt::format("LayerNorm({})", shape_str(normalized_));
}

nlohmann::json LayerNorm::to_json() const {
  nlohmann::json j = Module::to_json();
  j["normalized_shape"] = normalized_;
  if (eps_ != 1e-5) j["eps"] = eps_;
  if (!affine_) j["elementwise_affine"] = false;
  return j;
}

}  // namespace gpuml::nn
