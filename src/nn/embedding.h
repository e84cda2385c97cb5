// Embedding (torch.nn.Embedding): a lookup table weight (num_embeddings, embedding_dim), N(0, 1)
// at init (N(0, init_std) when given: GPT-2 uses 0.02). Indices that arrive as floats (a model's "x" input is f32) are cast to i64 in-graph.
//
//   Embedding emb(1000, 64);
//   Sym y = emb.forward(tokens, ctx, "0");   // tokens (N, T) -> (N, T, 64)
#pragma once

#include "nn/module.h"

namespace gpuml::nn {

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, double init_std = 1.0);

  std::string type_name() const override { return "Embedding"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

 private:
  int64_t num_, dim_;
  double init_std_;
};

}  // namespace gpuml::nn
