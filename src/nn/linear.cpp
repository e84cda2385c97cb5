#include "nn/linear.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace gpuml::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, double init_std, std::string tied_to)
    : in_(in_features), out_(out_features), bias_(bias), init_std_(init_std), tied_to_(std::move(tied_to)) {
  GPUML_CHECK(in_ > 0 && out_ > 0, "Linear: in_features {} and out_features {} must be > 0", in_,
              out_);
  GPUML_CHECK(init_std_ >= 0 && std::isfinite(init_std_), "Linear: init_std must be >= 0, got {}", init_std_);
}

Sym Linear::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  return forward_then(x, ctx, prefix, nullptr);
}

Sym Linear::forward_then(Sym x, ForwardContext& ctx, const std::string& prefix, Sym (*activation)(Sym)) const {
  Sym w = ctx.get(tied_to_.empty() ? join_name(prefix, "weight") : tied_to_, {out_, in_});  // (out, in)
  // (N, T, ..., in) runs as one (N*T*..., in) product, a view for a contiguous x, so that the
  // graph's fusion passes see a matrix product: the bias joins it (matmul_bias_act), and in the
  // backward the bias gradient joins its matmul (matmul_bgrad). The activation is applied to the
  // product before the reshape back, so that it joins the product too where it may (inference):
  // the pass does not look through a reshape.
  const Shape shape = x.shape();
  if (shape.size() > 2) x = reshape(x, {numel(shape) / in_, in_});
  Sym y = matmul(x, w, /*trans_a*/ false, /*trans_b*/ true);  // (rows, out)
  if (bias_) y = add(y, ctx.get(join_name(prefix, "bias"), {out_}));
  if (activation) y = activation(y);
  if (shape.size() <= 2) return y;
  Shape out_shape = shape;
  out_shape.back() = out_;
  return reshape(y, out_shape);
}

void Linear::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  if (tied_to_.empty()) out.push_back({join_name(prefix, "weight"), {out_, in_}});
  if (bias_) out.push_back({join_name(prefix, "bias"), {out_}});
}

void Linear::ties(const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) const {
  if (!tied_to_.empty()) out.emplace_back(join_name(prefix, "weight"), tied_to_);
}

void Linear::init(const std::string& prefix, ParamInitializer& initializer) const {
  double bound = default_init_bound(in_);
  if (tied_to_.empty()) {
    if (init_std_ > 0) initializer.normal(join_name(prefix, "weight"), {out_, in_}, 0.0, init_std_);
    else initializer.uniform(join_name(prefix, "weight"), {out_, in_}, bound);
  }
  if (!bias_) return;
  if (init_std_ > 0) initializer.constant(join_name(prefix, "bias"), {out_}, 0.0);
  else initializer.uniform(join_name(prefix, "bias"), {out_}, bound);
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
  return fmt::format("Linear({} -> {}{}{})", in_, out_, bias_ ? "" : ", no bias",
                     tied_to_.empty() ? "" : ", weight " + tied_to_);
}

nlohmann::json Linear::to_json() const {
  nlohmann::json j = Module::to_json();
  j["in_features"] = in_;
  j["out_features"] = out_;
  if (!bias_) j["bias"] = false;
  if (init_std_ > 0) j["init_std"] = init_std_;
  if (!tied_to_.empty()) j["tied_to"] = tied_to_;
  return j;
}

}  // namespace gpuml::nn
