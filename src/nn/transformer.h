// The layers of a GPT (decoder-only transformer), GPT-2 style, named like PyTorch's modules in
// ../shared/bench/torch_gpt.py so that weights move between the two by name:
//
//   PositionEmbedding   x (N, T, C) + weight[:T]: learned positions ("wpe.weight", (block, C))
//   TransformerBlock    pre-norm: x + proj(attention(ln1(x))), then x + fc2(gelu(fc1(ln2(x)))),
//                       causal multi-head self-attention with a fused qkv projection; state_dict
//                       ln1.{weight,bias}, ln2.*, qkv.*, proj.*, fc1.*, fc2.* (torch's order)
//
// In the model JSON (a whole GPT: gpt_model_json below, or `gpuml train --model cpu-small`):
//   {"type": "Embedding", "name": "wte", "num_embeddings": 65, "embedding_dim": 128, "init_std": 0.02},
//   {"type": "PositionEmbedding", "name": "wpe", "num_embeddings": 64, "embedding_dim": 128},
//   {"type": "Sequential", "name": "blocks", "layers": [{"type": "TransformerBlock", "n_embd": 128,
//    "n_head": 4, "n_layer": 4}, ...]},
//   {"type": "LayerNorm", "name": "ln_f", "normalized_shape": 128},
//   {"type": "Linear", "name": "head", "in_features": 128, "out_features": 65, "bias": false,
//    "tied_to": "wte.weight"}
// Init as GPT-2 (and torch_gpt.py): weights N(0, 0.02), the two residual projections (proj, fc2)
// N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weights 1; n_layer is read for this alone.
// Dropout p (TransformerBlock "dropout") on the attention probabilities and after each residual
// branch, in training only.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "nn/module.h"

namespace gpuml::nn {

class PositionEmbedding : public Module {
 public:
  PositionEmbedding(int64_t num_positions, int64_t dim, double init_std = 0.02);

  std::string type_name() const override { return "PositionEmbedding"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override { return numel(in); }
  std::string describe() const override;
  nlohmann::json to_json() const override;

 private:
  int64_t num_, dim_;
  double init_std_;
};

class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t n_embd, int64_t n_head, double dropout = 0.0, int64_t n_layer = 1);

  std::string type_name() const override { return "TransformerBlock"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;

  int64_t n_embd() const { return c_; }
  int64_t n_head() const { return heads_; }

 private:
  int64_t c_, heads_;
  double p_;
  int64_t n_layer_;
};

// A GPT's shape, as torch_gpt.py's presets give it.
struct GptConfig {
  int64_t vocab = 0, block = 0, n_layer = 0, n_head = 0, n_embd = 0;
  double dropout = 0.0;
};

// The model JSON of a whole GPT (the layers above plus the embeddings, ln_f and the tied head).
nlohmann::json gpt_model_json(const GptConfig& config);

// torch_gpt.py's presets: "cpu-small", "gpu-char", "gpt2-124m". vocab: the data's vocabulary size
// (0 keeps the preset's own, which only gpt2-124m has: 50304). Throws Invalid for another name or
// when a vocabulary is needed and not given.
GptConfig gpt_preset(const std::string& name, int64_t vocab);
std::vector<std::string> gpt_preset_names();

// torch_gpt.py's training recipe for a preset (AdamW betas 0.9, 0.99, weight decay on matrices,
// warm-up then cosine from lr to min_lr, clipping at 1): what `gpuml train --model PRESET` uses
// for every flag not given.
struct GptRecipe {
  int64_t batch = 0, steps = 0, warmup = 0;
  double lr = 0, min_lr = 0, weight_decay = 0;
  std::string data;  // the peer's data when --data is not given ("" : none, the user gives text)
};
GptRecipe gpt_recipe(const std::string& name);
bool is_gpt_preset(const std::string& name);

}  // namespace gpuml::nn
