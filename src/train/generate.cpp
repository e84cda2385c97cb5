#include "train/generate.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>

#include "backend/backend.h"
#include "backend/dispatch.h"
#include "core/error.h"
#include "core/philox.h"
#include "data/bpe.h"
#include "data/pretokenize.h"
#include "nn/embedding.h"
#include "ops/build.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "nn/transformer.h"
#include "train/model_runner.h"

namespace gpuml {
namespace {

// The GPT's layout, read from the model (nn::gpt_model_json's names), and its weights on the host.
struct GptWeights {
  int64_t vocab = 0, block = 0, c = 0, heads = 0, layers = 0;
  std::map<std::string, Tensor> w;
  const Tensor& at(const std::string& name) const {
    auto it = w.find(name);
    GPUML_CHECK(it != w.end(), "generate: the checkpoint has no weight '{}'", name);
    return it->second;
  }
};

GptWeights read_gpt(const LoadedModel& m) {
  const nn::Sequential& root = m.model.root();
  auto child = [&](const std::string& name) -> const nn::Module* {
    for (const auto& c : root.children())
      if (c.name == name) return c.module.get();
    return nullptr;
  };
  const auto* wte = dynamic_cast<const nn::Embedding*>(child("wte"));
  const auto* blocks = dynamic_cast<const nn::Sequential*>(child("blocks"));
  bool gpt = wte && dynamic_cast<const nn::PositionEmbedding*>(child("wpe")) && blocks &&
             dynamic_cast<const nn::LayerNorm*>(child("ln_f")) && dynamic_cast<const nn::Linear*>(child("head"));
  GPUML_CHECK(gpt,
              "generate needs a GPT laid out as the presets are (layers wte, wpe, blocks, ln_f, head: "
              "nn/transformer.h); this model's layers are {}",
              [&] {
                std::string names;
                for (const auto& c : root.children()) names += (names.empty() ? "" : ", ") + c.name;
                return names;
              }());
  GptWeights g;
  for (const auto& c : blocks->children()) {
    const auto* b = dynamic_cast<const nn::TransformerBlock*>(c.module.get());
    GPUML_CHECK(b != nullptr, "generate: blocks.{} is a {}, not a TransformerBlock", c.name, c.module->type_name());
    g.c = b->n_embd();
    g.heads = b->n_head();
    ++g.layers;
  }
  GPUML_CHECK(g.layers > 0, "generate: the model has no transformer blocks");
  g.block = m.model.input_shape().at(0);
  for (auto& [name, t] : m.model.untie(m.checkpoint.model))
    g.w[name] = contiguous(run_op(backend_registry().reference(), OpId::cast, {t}, [] {
                             Attrs a;
                             a.dtype = DType::f32;
                             return a;
                           }()),
                           backend_registry().reference());
  g.vocab = g.at("wte.weight").dim(0);
  return g;
}

// One token at a time through the blocks, each keeping its keys and values: (1, H, T, D) per block.
class CachedDecoder {
 public:
  explicit CachedDecoder(const GptWeights& g) : g_(g), cpu_(backend_registry().get("cpu")) {
    for (int64_t l = 0; l < g.layers; ++l) {
      k_.push_back(Tensor::empty({1, g.heads, g.block, g.c / g.heads}, DType::f32));
      v_.push_back(Tensor::empty({1, g.heads, g.block, g.c / g.heads}, DType::f32));
    }
  }

  int64_t length() const { return length_; }
  void clear() { length_ = 0; }

  // Feeds the token at position length(); returns the next token's logits (V,).
  std::vector<float> step(int64_t token) {
    GPUML_CHECK_KIND(ErrorKind::Internal, length_ < g_.block, "CachedDecoder: the cache is full");
    const int64_t pos = length_, c = g_.c, h = g_.heads, d = c / h;
    Tensor x = add(row(g_.at("wte.weight"), token), row(g_.at("wpe.weight"), pos));  // (1, C)
    for (int64_t l = 0; l < g_.layers; ++l) {
      std::string p = "blocks." + std::to_string(l) + ".";
      Tensor qkv = linear(norm(x, p + "ln1"), p + "qkv");  // (1, 3C)
      const float* src = qkv.data<float>();
      for (int64_t head = 0; head < h; ++head) {
        std::copy_n(src + c + head * d, d, k_[l].data<float>() + (head * g_.block + pos) * d);
        std::copy_n(src + 2 * c + head * d, d, v_[l].data<float>() + (head * g_.block + pos) * d);
      }
      // The query against every cached key (the attention op, not causal: all of them are
      // earlier), (1, H, 1, D).
      Tensor q = contiguous(qkv.slice(1, 0, c).reshape({1, h, 1, d}), cpu_);
      Tensor keys = k_[l].slice(2, 0, pos + 1), values = v_[l].slice(2, 0, pos + 1);
      Tensor att = run_op_outputs(cpu_, OpId::attention, {q, keys, values}, attention_attrs(/*causal*/ false))[0];
      x = add(x, linear(contiguous(att, cpu_).reshape({1, c}), p + "proj"));
      Attrs gl;
      gl.gelu_tanh = true;
      Tensor m = run_op(cpu_, OpId::gelu, {linear(norm(x, p + "ln2"), p + "fc1")}, gl);
      x = add(x, linear(m, p + "fc2"));
    }
    Attrs mm;
    mm.trans_b = true;
    Tensor logits = run_op(cpu_, OpId::matmul, {norm(x, "ln_f"), g_.at("wte.weight")}, mm);  // (1, V)
    ++length_;
    const float* lp = logits.data<float>();
    return std::vector<float>(lp, lp + g_.vocab);
  }

 private:
  Tensor row(const Tensor& table, int64_t i) const { return contiguous(table.slice(0, i, i + 1), cpu_); }
  Tensor add(const Tensor& a, const Tensor& b) const { return run_op(cpu_, OpId::add, {a, b}); }
  Tensor scalar(double v) const { return Tensor::from_values({}, {v}, DType::f32); }
  Tensor norm(const Tensor& x, const std::string& name) const {
    Attrs a;
    a.axis = -1;
    a.eps = 1e-5;
    return run_op_outputs(cpu_, OpId::layer_norm, {x, g_.at(name + ".weight"), g_.at(name + ".bias")}, a)[0];
  }
  Tensor linear(const Tensor& x, const std::string& name) const {
    Attrs a;
    a.trans_b = true;
    return add(run_op(cpu_, OpId::matmul, {x, g_.at(name + ".weight")}, a), g_.at(name + ".bias"));
  }

  const GptWeights& g_;
  Backend& cpu_;
  std::vector<Tensor> k_, v_;
  int64_t length_ = 0;
};

// The reference: the window's forward pass through the trained graph, every time.
class RecomputingDecoder {
 public:
  RecomputingDecoder(const LoadedModel& m, const GptWeights& g) : g_(g), runner_(make_inference_runner(m, "cpu")) {}

  // Log-probabilities of the token after `context` (at most T tokens), (V,).
  std::vector<float> next(const std::vector<int64_t>& context) {
    const auto t = static_cast<int64_t>(context.size());
    std::vector<double> ids(static_cast<size_t>(g_.block), 0.0);  // padding after the context: causal, unread
    for (int64_t i = 0; i < t; ++i) ids[i] = static_cast<double>(context[i]);
    Tensor probs = runner_->predict(Tensor::from_values({1, g_.block}, ids, DType::f32));  // (1, T, V)
    const float* p = probs.data<float>() + (t - 1) * g_.vocab;
    std::vector<float> out(static_cast<size_t>(g_.vocab));
    for (int64_t v = 0; v < g_.vocab; ++v) out[v] = std::log(std::max(p[v], 1e-30f));
    return out;
  }

 private:
  const GptWeights& g_;
  std::unique_ptr<ModelRunner> runner_;
};

int64_t choose(const std::vector<float>& logits, const GenerateOptions& o, uint64_t draw) {
  if (o.greedy) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  std::vector<int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t k = o.top_k > 0 ? std::min(order.size(), static_cast<size_t>(o.top_k)) : order.size();
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  const double top = logits[order[0]];
  std::vector<double> weights(k);
  double total = 0;
  for (size_t i = 0; i < k; ++i) total += weights[i] = std::exp((logits[order[i]] - top) / o.temperature);
  double u = philox_uniform(o.seed, 0, draw) * total;
  for (size_t i = 0; i < k; ++i) {
    if (u < weights[i]) return order[i];
    u -= weights[i];
  }
  return order[k - 1];
}

// The prompt's characters (UTF-8 code points) as token ids; Invalid naming one outside the vocabulary.
std::vector<int64_t> encode(const std::string& prompt, const std::vector<std::string>& vocabulary) {
  std::map<std::string, int64_t> id;
  for (size_t i = 0; i < vocabulary.size(); ++i) id[vocabulary[i]] = static_cast<int64_t>(i);
  std::vector<int64_t> out;
  int64_t position = 0;
  for (size_t i = 0; i < prompt.size(); ++position) {
    auto lead = static_cast<unsigned char>(prompt[i]);
    size_t len = lead < 0x80 ? 1 : lead >> 5 == 0x6 ? 2 : lead >> 4 == 0xE ? 3 : lead >> 3 == 0x1E ? 4 : 0;
    GPUML_CHECK(len > 0 && i + len <= prompt.size(), "--prompt: byte {} is not UTF-8", i);
    std::string ch = prompt.substr(i, len);
    auto it = id.find(ch);
    GPUML_CHECK(it != id.end(),
                "--prompt: character '{}' (U+{:04X}) at position {} is not in the model's vocabulary of {} "
                "characters",
                ch == "\n" ? "\\n" : ch,
                [&] {
                  uint32_t cp = len == 1 ? lead : lead & (0x7F >> len);
                  for (size_t j = 1; j < len; ++j) cp = (cp << 6) | (static_cast<unsigned char>(ch[j]) & 0x3F);
                  return cp;
                }(),
                position + 1, vocabulary.size());
    out.push_back(it->second);
    i += len;
  }
  return out;
}

}  // namespace

GenerateResult generate_text(const LoadedModel& m, const GenerateOptions& o,
                             const std::function<void(const std::string&)>& on_text) {
  GPUML_CHECK(m.task.kind() == TaskKind::language_model,
              "generate needs a language model trained on text (gpuml train --data FILE.txt); {} is a {} run",
              m.path, m.task.name());
  GPUML_CHECK(!m.class_names.empty() || !m.tokenizer_json.empty(),
              "generate needs a language model trained on text (gpuml train --data FILE.txt, or a token dataset of "
              "gpuml data pack --tokenizer); {} has no vocabulary of characters and no tokenizer (trained on {})",
              m.path, m.data.empty() ? "data without one" : m.data);
  GPUML_CHECK(o.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", o.max_new_tokens);
  GPUML_CHECK(o.greedy || (o.temperature > 0 && std::isfinite(o.temperature)), "--temperature must be > 0, got {}",
              o.temperature);
  GPUML_CHECK(o.top_k >= 0, "--top-k must be >= 0, got {}", o.top_k);
  GPUML_CHECK(o.threads >= 0, "--threads must be >= 0, got {}", o.threads);
  const int previous_threads = omp_get_max_threads();
  struct RestoreThreads {
    int n;
    ~RestoreThreads() { omp_set_num_threads(n); }
  } restore{previous_threads};
  if (o.threads > 0) omp_set_num_threads(o.threads);
  GptWeights g = read_gpt(m);
  GenerateResult result;
  // A run on a token dataset decodes through its tokenizer (bytes: a character may span tokens);
  // a character model through its vocabulary.
  std::optional<data::BpeTokenizer> tokenizer;
  if (!m.tokenizer_json.empty()) tokenizer = data::BpeTokenizer::from_json(m.tokenizer_json, m.path + " (tokenizer)");
  std::vector<int64_t> tokens;
  if (tokenizer) {
    for (int32_t id : tokenizer->encode(o.prompt)) tokens.push_back(id);
    GPUML_CHECK(tokenizer->vocab_size() <= g.vocab, "generate: the tokenizer has {} tokens, the model only {}",
                tokenizer->vocab_size(), g.vocab);
  } else {
    tokens = encode(o.prompt, m.class_names);
  }
  const char* unit = tokenizer ? "tokens" : "characters";
  if (static_cast<int64_t>(tokens.size()) > g.block) {
    result.note = fmt::format("the prompt's {} {} are more than the model's context of {}: it keeps the last {}",
                              tokens.size(), unit, g.block, g.block);
    tokens.erase(tokens.begin(), tokens.end() - g.block);
  }
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<CachedDecoder> cached;
  std::unique_ptr<RecomputingDecoder> recompute;
  if (o.use_cache) cached = std::make_unique<CachedDecoder>(g);
  else recompute = std::make_unique<RecomputingDecoder>(m, g);
  // The window the next token sees: all tokens so far, at most T; when it would pass T, the last
  // T / 2 (the cache then recomputes them at their new positions).
  std::vector<int64_t> window = tokens;
  std::vector<float> logits;
  // No prompt: start from token 0, as nanoGPT does (a newline in a character vocabulary of
  // text); with a tokenizer, from the newline's token.
  const int64_t start_token = tokenizer ? tokenizer->encode("\n").at(0) : 0;
  if (window.empty()) window.push_back(start_token);
  if (cached)
    for (int64_t t : window) logits = cached->step(t);
  // Decoded bytes that end inside a UTF-8 character, held until it is whole; bytes that cannot
  // become UTF-8 are shown as U+FFFD (as tokenizers' ByteLevel decoder does); result.text keeps them.
  std::string pending;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    if (recompute) logits = recompute->next(window);
    int64_t next = choose(logits, o, static_cast<uint64_t>(i));
    result.tokens.push_back(next);
    if (tokenizer) {
      GPUML_CHECK(next < tokenizer->vocab_size(), "generate: the model chose token {}, beyond the tokenizer's {}",
                  next, tokenizer->vocab_size());
      const std::string& bytes = tokenizer->token_bytes(static_cast<int32_t>(next));
      result.text += bytes;
      pending += bytes;
      const size_t whole = i + 1 == o.max_new_tokens ? pending.size() : data::utf8_safe_end(pending);
      if (whole > 0) on_text(data::utf8_lossy(std::string_view(pending).substr(0, whole)));
      pending.erase(0, whole);
    } else {
      const std::string& piece = m.class_names.at(static_cast<size_t>(next));
      result.text += piece;
      on_text(piece);
    }
    window.push_back(next);
    if (static_cast<int64_t>(window.size()) > g.block)  // both paths: keep the last T / 2
      window.erase(window.begin(), window.end() - std::max<int64_t>(1, g.block / 2));
    if (!cached || i + 1 == o.max_new_tokens) continue;
    if (cached->length() == g.block) {  // the cache is full: keep the last T / 2 at their new positions
      cached->clear();
      for (size_t j = 0; j + 1 < window.size(); ++j) cached->step(window[j]);
    }
    logits = cached->step(window.back());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gpuml
