// Text generation from a trained GPT (nn/transformer.h) with a KV cache: each block keeps the
// keys and values of the tokens seen so far, so a new token costs one token's projections and an
// attention over the cache (O(T)), not a forward pass over the whole window (O(T^2)).
//
//   LoadedModel m = load_trained_model("runs/shakespeare");
//   GenerateOptions o;
//   o.prompt = "ROMEO:";
//   o.max_new_tokens = 200;
//   GenerateResult r = generate_text(m, o, [](const std::string& piece) { fmt::print("{}", piece); });
//
// The decoder runs the op table's CPU kernels one op at a time (the host backend), on the
// checkpoint's f32 weights. Beyond the context window (the model's T), the window keeps its last
// T/2 tokens (the cache recomputes them at their new positions) and goes on, so a token costs
// O(T) on average there too (nanoGPT instead crops to the last T and recomputes everything, every
// token). use_cache = false runs the same windows through the trained graph's full forward pass
// for every token: the reference the cached path is tested against.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/inference.h"

namespace gpuml {

struct GenerateOptions {
  std::string prompt;           // characters of the run's vocabulary; may be empty
  int64_t max_new_tokens = 200;
  double temperature = 1.0;     // > 0; logits are divided by it before sampling
  int64_t top_k = 0;            // sample among the k likeliest tokens (0: all)
  uint64_t seed = 0;            // Philox stream of the sampling
  bool greedy = false;          // always the likeliest token (temperature, top_k, seed unused)
  bool use_cache = true;
  // OpenMP threads (0: all). One by default: a token's ops are too small to share, and threads
  // waiting on each other cost more than they save (measured: 70% of the time in libgomp's wait
  // with 2 threads on a 2-core machine).
  int threads = 1;
};

struct GenerateResult {
  std::vector<int64_t> tokens;  // the new tokens
  std::string text;             // them, decoded (a tokenizer's: the bytes, even where not UTF-8)
  std::string note;             // e.g. the prompt was cut to the context window (empty: none)
  double seconds = 0;           // generation alone, prompt included, loading excluded
};

// Throws Invalid when the run is not a character language model or not a GPT as
// nn::gpt_model_json lays it out (the cache needs to know the blocks), or when the prompt holds a
// character outside the vocabulary (named, with its position).
GenerateResult generate_text(const LoadedModel& m, const GenerateOptions& options,
                             const std::function<void(const std::string&)>& on_text);

}  // namespace gpuml
