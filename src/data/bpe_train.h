// Training a byte-level BPE tokenizer (data/bpe.h) on a text corpus, as `gpuml data tokenize`
// does. The corpus is read in 1 MiB chunks and cut into pieces by GPT-2's pre-tokenizer
// (data/pretokenize.h); only the distinct pieces and their counts are kept, so memory grows with
// the corpus's vocabulary of words, not its size. Then, until the vocabulary has `vocab_size`
// tokens, the most frequent adjacent pair of tokens (ties: the pair of smaller ids) becomes a new
// token; counts are updated incrementally in the words that held the pair.
//
//   data::BpeTrainOptions o;
//   o.vocab_size = 4096;
//   data::BpeTrainReport r = data::train_bpe("tinyshakespeare.txt", o);
//   write_file_atomically("tokenizer.json", r.tokenizer.to_json());
//
// A corpus that is not UTF-8 is refused naming the first bad byte's offset, unless
// allow_invalid_utf8: then such bytes stay bytes (byte-level fallback: each is a piece's character
// of its own class, and every byte has a token), which `tokenizers` cannot reproduce (it takes
// Unicode strings).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/bpe.h"

namespace gpuml::data {

struct BpeTrainOptions {
  int64_t vocab_size = 4096;  // 256 byte tokens + the special tokens + up to the rest in merges
  // Added tokens with ids after the merges ("<|endoftext|>"): cut out of the corpus before it is
  // pre-tokenized, as encoding cuts them (data/bpe.h), so no merge learns their pieces.
  std::vector<std::string> special_tokens;
  bool allow_invalid_utf8 = false;  // see above
  // (bytes read, file size), then (merges done, merges wanted); either may be empty.
  std::function<void(int64_t, int64_t)> on_read, on_merge;
};

struct BpeTrainReport {
  BpeTokenizer tokenizer;
  int64_t bytes = 0;          // of the corpus
  int64_t pieces = 0;         // pre-tokenizer pieces in the corpus
  int64_t distinct = 0;       // distinct pieces (what training holds in memory)
  int64_t invalid_bytes = 0;  // bytes that are not UTF-8 (allow_invalid_utf8)
  std::string note;           // e.g. the corpus ran out of pairs before vocab_size
};

BpeTrainReport train_bpe(const std::string& corpus, const BpeTrainOptions& options);

}  // namespace gpuml::data
