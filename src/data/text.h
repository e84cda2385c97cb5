// Text for character-level language models, as ../shared/bench/torch_gpt.py reads it: the
// vocabulary is the text's sorted distinct characters (Unicode code points of UTF-8 text), the
// first 90% of the characters train and the last 10% validate; a training batch is `batch`
// random windows of block + 1 characters (inputs the first block, targets the last block), drawn
// from Philox by (seed, epoch, batch), so any batch can be rebuilt to resume.
//
//   data::TextCorpus text = data::read_text_corpus("tinyshakespeare.txt");  // 65 characters
//   data::TextWindowLoader train(text.train, {64, 12, seed});   // x (12, 64) f32 ids, y (12, 64) i64
//   data::InMemoryDataset val = data::text_windows(text.validation, 64);  // consecutive windows
//
// Refused with the reason: a missing or empty file, bytes that are not UTF-8 (naming the offset),
// binary data (a NUL byte), text too short for one window of each split.
//
// "random-tokens:VOCAB[:COUNT]" is the peer's timing data for gpt2-124m: COUNT (default 2,000,000)
// tokens drawn uniformly from [0, VOCAB) by Philox from the seed, split 90/10 the same way; it has
// no vocabulary of characters, so a model trained on it cannot `generate` text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batch_allocator.h"
#include "data/batch_source.h"
#include "data/dataset.h"

namespace gpuml::data {

struct TextCorpus {
  std::vector<std::string> vocabulary;  // token id -> the character (UTF-8), sorted by code point
  int64_t vocab = 0;                    // token ids are in [0, vocab) (random tokens: no vocabulary)
  std::vector<int32_t> train, validation;
  int64_t characters = 0;
};

// `block`: the window the model reads; both splits must hold a window of block + 1 characters.
TextCorpus read_text_corpus(const std::string& path, int64_t block);

bool is_random_tokens(const std::string& spec);  // "random-tokens:..."
TextCorpus random_token_corpus(const std::string& spec, int64_t block, uint64_t seed);

struct TextWindowOptions {
  int64_t block = 64;
  int64_t batch = 12;  // windows of the global batch, of which this process takes `part`
  uint64_t seed = 0;
  std::shared_ptr<BatchMemory> memory;  // where batches are built (nullptr: plain memory)
  // Data parallelism (data/batch_source.h): every process draws the same global batch of windows
  // and builds only its rows of it.
  BatchPart part = {};
};

class TextWindowLoader : public BatchSource {
 public:
  TextWindowLoader(std::vector<int32_t> tokens, TextWindowOptions options);
  // An epoch is as many batches as cover the split's characters once (at least one).
  int64_t batches_per_epoch() const override { return batches_; }
  void seek(LoaderPosition position) override;
  std::optional<Batch> next() override;
  LoaderPosition position() const override { return position_; }

 private:
  std::vector<int32_t> tokens_;
  TextWindowOptions options_;
  int64_t batches_ = 1;
  LoaderPosition position_;
};

// Consecutive, non-overlapping windows of the split (at most `max_windows`): x (N, block) of
// token ids, y (N, block) the next characters; for evaluation, the same rows every time.
InMemoryDataset text_windows(const std::vector<int32_t>& tokens, int64_t block, int64_t max_windows = 1 << 30);

}  // namespace gpuml::data
