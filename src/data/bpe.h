// A byte-level BPE tokenizer (GPT-2's scheme), read and written in the JSON format of the
// `tokenizers` library (tokenizer.json: "model": {"type": "BPE", "vocab", "merges"}, pre-tokenizer
// and decoder "ByteLevel"), so that files gpuml trains load there and encode the same.
//
//   data::BpeTokenizer tok = data::BpeTokenizer::read("tokenizer.json");
//   std::vector<int32_t> ids = tok.encode("To be, or not to be");   // ids in [0, tok.vocab_size())
//   std::string text = tok.decode(ids);                              // the same bytes back
//
// Text is cut into pieces by GPT-2's pre-tokenizer (data/pretokenize.h); each piece's bytes start
// as one token each (a byte-level vocabulary has a token for every one of the 256 bytes, so
// nothing is ever unknown, and any bytes, UTF-8 or not, round-trip), then the merges apply, the
// lowest-ranked adjacent pair first (the leftmost of equal rank), until none applies. In the JSON
// a token is written with GPT-2's byte-to-character map (a space is "Ġ", a newline "Ċ").
//
// Added tokens ("added_tokens", such as "<|endoftext|>" between documents) are matched in the
// text before it is pre-tokenized, as `tokenizers` does: each occurrence (leftmost, the longest
// of those starting at the same byte) is its one id, and the text on either side is encoded as if
// it ended or began there; decoding gives back the token's text. A corpus can then hold them as
// plain text. They take no part in merges.
//
// Reading treats the file as hostile: it must be JSON of that shape, with ids 0..V-1 each used
// once (by the vocabulary and the added tokens together), every merge made of two tokens whose
// joined text is a token, the 256 byte tokens present, and no feature gpuml does not implement (a
// normalizer, added tokens that strip spaces or match single words only, dropout, word prefixes
// or suffixes, a pre-tokenizer other than ByteLevel with its regex); errors name the file and the
// entry.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gpuml::data {

// Token ids travel to the model as float32, which holds integers exactly up to 2^24.
inline constexpr int64_t kMaxVocabSize = int64_t{1} << 24;

class BpeTokenizer {
 public:
  // The 256 byte tokens (id = byte value) and no merges.
  BpeTokenizer();
  // `merges` in rank order: each pair of ids joins into a token, a new one (the next id) unless
  // the joined bytes already are a token.
  static BpeTokenizer from_merges(const std::vector<std::pair<int32_t, int32_t>>& merges);
  // Appends special tokens (added tokens with "special": true), each a new id after the others;
  // throws on an empty one or one given twice.
  void add_special_tokens(const std::vector<std::string>& contents);

  static BpeTokenizer from_json(std::string_view text, const std::string& where);
  static BpeTokenizer read(const std::filesystem::path& path);
  std::string to_json() const;  // tokenizers' tokenizer.json

  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t merge_count() const { return static_cast<int64_t>(merges_.size()); }
  const std::string& token_bytes(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  // The added tokens' texts (what split_specials and stream_pretokens cut out) and their ids.
  const std::vector<std::string>& added_texts() const { return added_texts_; }
  int32_t added_id(size_t index) const { return added_ids_.at(index); }

  std::vector<int32_t> encode(std::string_view text) const;
  // One piece of the pre-tokenizer's output, appended to `out`.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  // The bytes of the tokens; throws naming an id outside [0, vocab_size()).
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  std::vector<std::string> tokens_;                  // id -> its bytes
  std::array<int32_t, 256> byte_token_{};            // byte -> the id of its one-byte token
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> the pair it joins
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_of_;  // pair -> (rank, merged id)
  bool ignore_merges_ = false;  // tokenizers' option: a piece that is a token is taken whole
  std::vector<std::string> added_texts_;  // added tokens, in the file's order
  std::vector<int32_t> added_ids_;
  std::vector<bool> added_special_;  // "special": true (`tokenizers` may skip them when decoding)
};

// GPT-2's map from a byte to the printable character that stands for it in the JSON (UTF-8).
const std::string& byte_level_char(uint8_t byte);

}  // namespace gpuml::data
