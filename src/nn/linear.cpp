#include "nn/linear.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_(in_features), out_(out_features), bias_(bias) {
  GPUML_CHECK(in_ > 0 && out_ > 0, "Linear: in_features {} and out_features {} must be > 0", in_,
              out_);
}

Sym Linear::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  Sym w = ctx.get(join_name(prefix, "weight"), {out_, in_});  // (out, in)
  Sym y = matmul(x, w, /*trans_a*/ false, /*trans_b*/ true);  // (..., out)
  if (bias_) y = add(y, ctx.get(join_name(prefix, "bias"), {out_}));
  return y;
}

void Linear::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  out.push_back({join_name(prefix, "weight"), {out_, in_}});
  if (bias_) out.push_back({join_name(prefix, "bias"), {out_}});
}

void Linear::init(const std::string& prefix, ParamInitializer& initializer) const {
  double bound = default_init_bound(in_);
  initializer.uniform(join_name(prefix, "weight"), {out_, in_}, bound);
  if (bias_) initializer.uniform(join_name(prefix, "bias"), {out_}, bound);
}

Shape Linear::output_shape(const Shape& in) const {
  GPUML_CHECK(!in.empty(), "expects input features ({}), gets a scalar per sample", in_);
  GPUML_CHECK(in.back() == in_, "expects {} input features, gets {} (per-sample input {})", in_,
              in.back(), shape_str(in));
  Shape out = in;
  out.back() = out_;
  return out;
}

int64_t Linear::flops(const Shape& in) const {
  int64_t rows = numel(in) / in_;
  return rows * out_ * (2 * in_ + (bias_ ? 1 : 0));
}

std::string Linear::describe() const {
  return fmt::format("Linear({} -> {}{})", in_, out_, bias_ ? "" : ", no bias");
}

nlohmann::json Linear::to_json() const {
  nlohmann::json j = Module::to_json();
  j["in_features"] = in_;
  j["out_features"] = out_;
  if (!bias_) j["bias"] = false;
  return j;
}

}  // namespace gpuml::nn
