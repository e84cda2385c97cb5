// BatchNorm1d / BatchNorm2d (torch.nn.BatchNorm*d, affine, tracking running stats).
// Training: normalises with batch statistics and pushes the new running stats to
// ctx.buffer_updates, as PyTorch updates them:
//   running_mean = (1 - m) * running_mean + m * mean
//   running_var  = (1 - m) * running_var  + m * var * n / (n - 1)   (unbiased, n = N * spatial)
//   num_batches_tracked += 1
// --sync-batchnorm (ForwardContext::sync_batch_norm): mean, variance and n are over every rank's
// batch (all_reduce_sum ops), so N ranks train as one process with their whole batch.
// Eval: normalises with the running stats. state_dict: weight, bias, running_mean, running_var,
// num_batches_tracked (i64 scalar); the last three are buffers (trainable = false).
//
//   BatchNorm2d bn(32);
//   Sym y = bn.forward(x, ctx, "1");     // x (N, 32, H, W); ctx.buffer_updates gets
//   "1.running_mean", ...
#pragma once

#include <tuple>
#include <vector>

#include "nn/module.h"

namespace gpuml::nn {

class BatchNorm : public Module {
 public:
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;  // scale and shift per element
  std::string describe() const override;
  nlohmann::json to_json() const override;

 protected:
  // spatial_dims: 1 for BatchNorm1d (per-sample (C) or (C, L)), 2 for BatchNorm2d ((C, H, W)).
  BatchNorm(int spatial_dims, int64_t num_features, double eps, double momentum);

 private:
  // Training with ForwardContext::sync_batch_norm: (y, mean (C), biased variance (C), count (1))
  // over every rank's batch.
  std::tuple<Sym, Sym, Sym, Sym> forward_synced(Sym x, Sym weight, Sym bias, ForwardContext& ctx,
                                                const std::vector<int64_t>& not_channel,
                                                const Shape& broadcast_channel) const;
  int spatial_dims_;
  int64_t features_;
  double eps_, momentum_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNorm(1, num_features, eps, momentum) {}
  std::string type_name() const override { return "BatchNorm1d"; }
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNorm(2, num_features, eps, momentum) {}
  std::string type_name() const override { return "BatchNorm2d"; }
};

}  // namespace gpuml::nn
