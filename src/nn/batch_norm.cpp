#include "nn/batch_norm.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

BatchNorm::BatchNorm(int spatial_dims, int64_t num_features, double eps, double momentum)
    : spatial_dims_(spatial_dims), features_(num_features), eps_(eps), momentum_(momentum) {
  GPUML_CHECK(features_ > 0, "BatchNorm: num_features must be > 0, got {}", features_);
  GPUML_CHECK(eps_ > 0, "BatchNorm: eps must be > 0, got {}", eps_);
  GPUML_CHECK(momentum_ >= 0 && momentum_ <= 1, "BatchNorm: momentum must be in [0, 1], got {}",
              momentum_);
}

Sym BatchNorm::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  const Shape channel{features_};
  Sym weight = ctx.get(join_name(prefix, "weight"), channel);
  Sym bias = ctx.get(join_name(prefix, "bias"), channel);
  Sym running_mean = ctx.get(join_name(prefix, "running_mean"), channel);
  Sym running_var = ctx.get(join_name(prefix, "running_var"), channel);
  if (!ctx.training) return batch_norm(x, weight, bias, running_mean, running_var, false, eps_);

  const Shape& xs = x.shape();  // (N, C, ...)
  std::vector<int64_t> not_channel;
  Shape broadcast_channel(xs.size(), 1);  // (1, C, 1, ...)
  broadcast_channel[1] = features_;
  for (int64_t i = 0; i < static_cast<int64_t>(xs.size()); ++i)
    if (i != 1) not_channel.push_back(i);
  int64_t n = numel(xs) / features_;
  Sym y, batch_mean, running_var_term;  // running_var_term: the batch's unbiased variance (C)
  if (ctx.sync_batch_norm) {
    GPUML_CHECK(n > 0, "{} (training, --sync-batchnorm): this rank's input {} has no values per channel",
                type_name(), shape_str(xs));
    Sym var, count;
    std::tie(y, batch_mean, var, count) = forward_synced(x, weight, bias, ctx, not_channel, broadcast_channel);
    running_var_term = mul(var, div(count, add_scalar(count, -1.0)));  // count: every rank's values per channel
  } else {
    GPUML_CHECK(n > 1, "{} (training): expected more than 1 value per channel, got input {}",
                type_name(), shape_str(xs));
    y = batch_norm(x, weight, bias, running_mean, running_var, true, eps_);
    // The op does not update running stats (HELPERS.md); compute the batch statistics here.
    batch_mean = mean(x, not_channel);  // (C)
    Sym centered = sub(x, reshape(batch_mean, broadcast_channel));
    Sym batch_var = mean(mul(centered, centered), not_channel);  // (C), biased
    running_var_term = mul_scalar(batch_var, static_cast<double>(n) / static_cast<double>(n - 1));
  }
  double m = momentum_;
  ctx.buffer_updates.emplace_back(join_name(prefix, "running_mean"),
                                  add(mul_scalar(running_mean, 1 - m), mul_scalar(batch_mean, m)));
  ctx.buffer_updates.emplace_back(join_name(prefix, "running_var"),
                                  add(mul_scalar(running_var, 1 - m), mul_scalar(running_var_term, m)));
  std::string tracked = join_name(prefix, "num_batches_tracked");
  ctx.buffer_updates.emplace_back(tracked, add_scalar(ctx.get(tracked, {}), 1));
  return y;
}

// Two passes over the ranks, as the batch_norm kernels compute one batch's statistics (not
// E[x^2] - mean^2, which cancels in f32): the per-channel sums and this rank's count summed over
// the ranks give the global mean; then the squared deviations from it, summed over the ranks, the
// global (biased) variance. Autodiff differentiates through both all_reduce_sums, whose gradient
// is the all-reduce of the ranks' gradients: d(loss)/dx is then what one process computes over
// the whole batch (ModelRunner weights each rank's loss so that this holds for unequal batches).
std::tuple<Sym, Sym, Sym, Sym> BatchNorm::forward_synced(Sym x, Sym weight, Sym bias, ForwardContext& ctx,
                                                         const std::vector<int64_t>& not_channel,
                                                         const Shape& broadcast_channel) const {
  if (x.dtype() == DType::bf16) x = cast(x, DType::f32);  // statistics in f32, as batch_norm under autocast
  const int64_t n = numel(x.shape()) / features_;         // this rank's values per channel
  Sym local = concat({sum(x, not_channel), fill(ctx.graph, {1}, static_cast<double>(n), x.dtype())}, 0);  // (C + 1)
  Sym global = all_reduce_sum(local);
  Sym count = slice(global, 0, features_, features_ + 1);         // (1)
  Sym mean = div(slice(global, 0, 0, features_), count);          // (C)
  Sym centered = sub(x, reshape(mean, broadcast_channel));        // (N, C, ...)
  Sym squares = all_reduce_sum(sum(mul(centered, centered), not_channel));  // (C)
  Sym var = div(squares, count);                                  // (C), biased
  Sym scale = mul(rsqrt(add_scalar(var, eps_)), weight);         // (C)
  Sym y = add(mul(centered, reshape(scale, broadcast_channel)), reshape(bias, broadcast_channel));
  return {y, mean, var, count};
}

void BatchNorm::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  out.push_back({join_name(prefix, "weight"), {features_}});
  out.push_back({join_name(prefix, "bias"), {features_}});
  out.push_back({join_name(prefix, "running_mean"), {features_}, DType::f32, false});
  out.push_back({join_name(prefix, "running_var"), {features_}, DType::f32, false});
  out.push_back({join_name(prefix, "num_batches_tracked"), {}, DType::i64, false});
}

void BatchNorm::init(const std::string& prefix, ParamInitializer& initializer) const {
  initializer.constant(join_name(prefix, "weight"), {features_}, 1.0);
  initializer.constant(join_name(prefix, "bias"), {features_}, 0.0);
  initializer.constant(join_name(prefix, "running_mean"), {features_}, 0.0);
  initializer.constant(join_name(prefix, "running_var"), {features_}, 1.0);
  initializer.constant(join_name(prefix, "num_batches_tracked"), {}, 0.0, DType::i64);
}

Shape BatchNorm::output_shape(const Shape& in) const {
  if (spatial_dims_ == 1) {
    GPUML_CHECK(in.size() == 1 || in.size() == 2,
                "expects a (C) or (C, L) input per sample, gets {}", shape_str(in));
  } else {
    GPUML_CHECK(in.size() == 3, "expects a (C, H, W) input per sample, gets {}", shape_str(in));
  }
  GPUML_CHECK(in[0] == features_, "expects {} channels, gets {} (per-sample input {})", features_,
              in[0], shape_str(in));
  return in;
}

int64_t BatchNorm::flops(const Shape& in) const {
  return 2 * numel(in);
}

std::string BatchNorm::describe() const {
  return fmt::format("{}({})", type_name(), features_);
}

nlohmann::json BatchNorm::to_json() const {
  nlohmann::json j = Module::to_json();
  j["num_features"] = features_;
  if (eps_ != 1e-5) j["eps"] = eps_;
  if (momentum_ != 0.1) j["momentum"] = momentum_;
  return j;
}

}  // namespace gpuml::nn
