#include "nn/transformer.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/philox.h"
#include "core/spelling.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"

namespace gpuml::nn {

PositionEmbedding::PositionEmbedding(int64_t num_positions, int64_t dim, double init_std)
    : num_(num_positions), dim_(dim), init_std_(init_std) {
  GPUML_CHECK(num_ > 0 && dim_ > 0, "PositionEmbedding: num_embeddings {} and embedding_dim {} must be > 0", num_,
              dim_);
  GPUML_CHECK(init_std_ > 0 && init_std_ < 1e30, "PositionEmbedding: init_std must be > 0, got {}", init_std_);
}

Sym PositionEmbedding::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  Sym weight = ctx.get(join_name(prefix, "weight"), {num_, dim_});
  int64_t t = x.shape().at(x.shape().size() - 2);
  Sym positions = t == num_ ? weight : slice(weight, 0, 0, t);  // (T, C), broadcast over the batch
  return add(x, positions);
}

void PositionEmbedding::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  out.push_back({join_name(prefix, "weight"), {num_, dim_}});
}

void PositionEmbedding::init(const std::string& prefix, ParamInitializer& initializer) const {
  initializer.normal(join_name(prefix, "weight"), {num_, dim_}, 0.0, init_std_);
}

Shape PositionEmbedding::output_shape(const Shape& in) const {
  GPUML_CHECK(in.size() == 2 && in[1] == dim_,
              "expects (positions, {}) per sample (an Embedding's output), gets {}", dim_, shape_str(in));
  GPUML_CHECK(in[0] <= num_, "a sequence of {} positions is longer than the {} this layer has", in[0], num_);
  return in;
}

std::string PositionEmbedding::describe() const {
  return fmt::format("PositionEmbedding({}, {})", num_, dim_);
}

nlohmann::json PositionEmbedding::to_json() const {
  nlohmann::json j = Module::to_json();
  j["num_embeddings"] = num_;
  j["embedding_dim"] = dim_;
  if (init_std_ != 0.02) j["init_std"] = init_std_;
  return j;
}

namespace {

constexpr double kInitStd = 0.02;  // GPT-2's

// Causal softmax(q k^T / sqrt(D)) v over (N, H, T, D) heads: the attention op (tiled over keys
// with an online softmax, never the T x T matrix), dropout on the probabilities in training.
Sym self_attention(Sym q, Sym k, Sym v, double p, ForwardContext& ctx) {
  const bool drop = ctx.training && p > 0;
  const uint64_t offset = ctx.rng_offset;
  if (drop) {
    const Shape& s = q.shape();
    ctx.rng_offset += philox_blocks(static_cast<uint64_t>(s[0] * s[1] * s[2] * s[2]));
  }
  return attention(q, k, v, /*causal*/ true, drop ? p : 0.0, ctx.dropout_seed, offset, ctx.training);
}

Sym residual_dropout(Sym x, double p, ForwardContext& ctx) {
  if (!ctx.training || p == 0) return x;
  uint64_t offset = ctx.rng_offset;
  ctx.rng_offset += philox_blocks(static_cast<uint64_t>(numel(x.shape())));
  return dropout(x, p, ctx.dropout_seed, offset, true);
}

}  // namespace

TransformerBlock::TransformerBlock(int64_t n_embd, int64_t n_head, double dropout, int64_t n_layer)
    : c_(n_embd), heads_(n_head), p_(dropout), n_layer_(n_layer) {
  GPUML_CHECK(c_ > 0 && heads_ > 0, "TransformerBlock: n_embd {} and n_head {} must be > 0", c_, heads_);
  GPUML_CHECK(c_ % heads_ == 0, "TransformerBlock: n_embd {} must be divisible by n_head {}", c_, heads_);
  GPUML_CHECK(p_ >= 0 && p_ < 1, "TransformerBlock: dropout must be in [0, 1), got {}", p_);
  GPUML_CHECK(n_layer_ >= 1, "TransformerBlock: n_layer must be >= 1, got {}", n_layer_);
}

Sym TransformerBlock::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  const Shape& s = x.shape();  // (N, T, C)
  GPUML_CHECK_SHAPE(s.size() == 3 && s[2] == c_, "TransformerBlock '{}': expects (N, T, {}), gets {}", prefix, c_,
                    shape_str(s));
  int64_t n = s[0], t = s[1], d = c_ / heads_;
  auto sub = [&](const char* name) { return join_name(prefix, name); };
  LayerNorm ln({c_});
  Linear qkv(c_, 3 * c_), proj(c_, c_), fc1(c_, 4 * c_), fc2(4 * c_, c_);

  Sym h = qkv.forward(ln.forward(x, ctx, sub("ln1")), ctx, sub("qkv"));  // (N, T, 3C)
  auto heads = [&](int64_t part) {  // (N, H, T, D)
    return permute(reshape(slice(h, 2, part * c_, (part + 1) * c_), {n, t, heads_, d}), {0, 2, 1, 3});
  };
  Sym y = self_attention(heads(0), heads(1), heads(2), p_, ctx);
  y = reshape(permute(y, {0, 2, 1, 3}), {n, t, c_});
  x = add(x, residual_dropout(proj.forward(y, ctx, sub("proj")), p_, ctx));

  auto gelu_tanh = [](Sym s) { return gelu(s, /*tanh*/ true); };
  Sym m = fc1.forward_then(ln.forward(x, ctx, sub("ln2")), ctx, sub("fc1"), gelu_tanh);
  m = fc2.forward(m, ctx, sub("fc2"));
  return add(x, residual_dropout(m, p_, ctx));
}

void TransformerBlock::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  LayerNorm ln({c_});
  ln.params(join_name(prefix, "ln1"), out);
  ln.params(join_name(prefix, "ln2"), out);
  Linear(c_, 3 * c_).params(join_name(prefix, "qkv"), out);
  Linear(c_, c_).params(join_name(prefix, "proj"), out);
  Linear(c_, 4 * c_).params(join_name(prefix, "fc1"), out);
  Linear(4 * c_, c_).params(join_name(prefix, "fc2"), out);
}

void TransformerBlock::init(const std::string& prefix, ParamInitializer& initializer) const {
  double residual_std = kInitStd / std::sqrt(2.0 * static_cast<double>(n_layer_));
  LayerNorm ln({c_});
  ln.init(join_name(prefix, "ln1"), initializer);
  ln.init(join_name(prefix, "ln2"), initializer);
  Linear(c_, 3 * c_, true, kInitStd).init(join_name(prefix, "qkv"), initializer);
  Linear(c_, c_, true, residual_std).init(join_name(prefix, "proj"), initializer);
  Linear(c_, 4 * c_, true, kInitStd).init(join_name(prefix, "fc1"), initializer);
  Linear(4 * c_, c_, true, residual_std).init(join_name(prefix, "fc2"), initializer);
}

Shape TransformerBlock::output_shape(const Shape& in) const {
  GPUML_CHECK(in.size() == 2 && in[1] == c_, "expects (positions, {}) per sample, gets {}", c_, shape_str(in));
  return in;
}

int64_t TransformerBlock::flops(const Shape& in) const {
  int64_t t = in.at(0);
  // The four projections (3C + C + 4C + 4C outputs of C or 4C inputs: 24 C^2 multiply-adds per
  // token... as flops 2 * 12 C^2) plus q k^T and p v over the full T x T (the causal half is not
  // subtracted, as PaLM's MFU formula counts it).
  return t * 24 * c_ * c_ + 4 * t * t * c_;
}

std::string TransformerBlock::describe() const {
  return fmt::format("TransformerBlock({} wide, {} heads{})", c_, heads_,
                     p_ > 0 ? fmt::format(", dropout {}", p_) : std::string());
}

nlohmann::json TransformerBlock::to_json() const {
  nlohmann::json j = Module::to_json();
  j["n_embd"] = c_;
  j["n_head"] = heads_;
  if (p_ > 0) j["dropout"] = p_;
  if (n_layer_ != 1) j["n_layer"] = n_layer_;
  return j;
}

nlohmann::json gpt_model_json(const GptConfig& c) {
  using nlohmann::json;
  GPUML_CHECK(c.vocab > 0 && c.block > 0 && c.n_layer > 0 && c.n_head > 0 && c.n_embd > 0,
              "GPT: vocab {}, block {}, n_layer {}, n_head {} and n_embd {} must be > 0", c.vocab, c.block, c.n_layer,
              c.n_head, c.n_embd);
  json blocks = json::array();
  for (int64_t i = 0; i < c.n_layer; ++i) {
    json b = {{"type", "TransformerBlock"}, {"n_embd", c.n_embd}, {"n_head", c.n_head}, {"n_layer", c.n_layer}};
    if (c.dropout > 0) b["dropout"] = c.dropout;
    blocks.push_back(std::move(b));
  }
  json layers = json::array();
  layers.push_back({{"type", "Embedding"}, {"name", "wte"}, {"num_embeddings", c.vocab}, {"embedding_dim", c.n_embd},
                    {"init_std", kInitStd}});
  layers.push_back(
      {{"type", "PositionEmbedding"}, {"name", "wpe"}, {"num_embeddings", c.block}, {"embedding_dim", c.n_embd}});
  if (c.dropout > 0) layers.push_back({{"type", "Dropout"}, {"name", "drop"}, {"p", c.dropout}});
  layers.push_back({{"type", "Sequential"}, {"name", "blocks"}, {"layers", blocks}});
  layers.push_back({{"type", "LayerNorm"}, {"name", "ln_f"}, {"normalized_shape", c.n_embd}});
  layers.push_back({{"type", "Linear"},
                    {"name", "head"},
                    {"in_features", c.n_embd},
                    {"out_features", c.vocab},
                    {"bias", false},
                    {"tied_to", "wte.weight"}});
  return json{{"input_shape", {c.block}}, {"layers", layers}};
}

std::vector<std::string> gpt_preset_names() { return {"cpu-small", "gpu-char", "gpt2-124m"}; }

bool is_gpt_preset(const std::string& name) {
  for (const std::string& n : gpt_preset_names())
    if (n == name) return true;
  return false;
}

GptRecipe gpt_recipe(const std::string& name) {
  if (name == "cpu-small") return {12, 2000, 100, 1e-3, 1e-4, 0.1, ""};
  if (name == "gpu-char") return {64, 5000, 100, 1e-3, 1e-4, 0.1, ""};
  if (name == "gpt2-124m") return {8, 60, 10, 6e-4, 6e-5, 0.1, "random-tokens:50304"};
  GPUML_FAIL(ErrorKind::Invalid, "unknown GPT preset '{}'{}", name, did_you_mean(name, gpt_preset_names()));
}

GptConfig gpt_preset(const std::string& name, int64_t vocab) {
  GptConfig c;
  if (name == "cpu-small") {
    c = {0, 64, 4, 4, 128, 0.0};
  } else if (name == "gpu-char") {
    c = {0, 256, 6, 6, 384, 0.2};
  } else if (name == "gpt2-124m") {
    c = {50304, 1024, 12, 12, 768, 0.0};
  } else {
    GPUML_FAIL(ErrorKind::Invalid, "unknown GPT preset '{}'{}", name, did_you_mean(name, gpt_preset_names()));
  }
  if (vocab > 0) c.vocab = vocab;
  GPUML_CHECK(c.vocab > 0,
              "the GPT preset '{}' takes its vocabulary from the data: train it on a text file (--data FILE.txt; "
              "text is known by its .txt name) or on random tokens (--data random-tokens:VOCAB)",
              name);
  return c;
}

}  // namespace gpuml::nn
