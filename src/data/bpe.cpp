#include "data/bpe.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_read.h"
#include "data/pretokenize.h"

namespace gpuml::data {

namespace {

// Errors in a tokenizer file are the user's file being wrong.
#define TOKENIZER_CHECK(cond, ...) GPUML_CHECK_KIND(ErrorKind::Io, cond, __VA_ARGS__)

using json = nlohmann::json;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string utf8_of(int32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {  // the byte-level alphabet stays below U+0800
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves; the others (controls, space,
// DEL, the Latin-1 controls and the soft hyphen) map, in byte order, to U+0100 onwards.
struct ByteLevelAlphabet {
  std::array<std::string, 256> chars;
  std::unordered_map<int32_t, uint8_t> byte_of;  // code point -> byte
  ByteLevelAlphabet() {
    int32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int32_t cp = printable ? b : next++;
      chars[static_cast<size_t>(b)] = utf8_of(cp);
      byte_of[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteLevelAlphabet& alphabet() {
  static const ByteLevelAlphabet a;
  return a;
}

std::string to_byte_level(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) out += alphabet().chars[b];
  return out;
}

// A token's text in the JSON back to its bytes; throws naming the entry when a character is not
// one of the alphabet's.
std::string from_byte_level(const std::string& text, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int32_t cp = -1;
    size_t length = 1;
    if (lead < 0x80) {
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0 && i + 1 < text.size() &&
               (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
      cp = ((lead & 0x1F) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3F);
      length = 2;
    }
    auto it = alphabet().byte_of.find(cp);
    TOKENIZER_CHECK(cp >= 0 && it != alphabet().byte_of.end(),
                    "{}: token '{}' holds a character (byte {} of it) outside the byte-level "
                    "alphabet: a ByteLevel BPE "
                    "writes each byte as one of 256 characters",
                    where, text_excerpt(text), i);
    out += static_cast<char>(it->second);
    i += length;
  }
  TOKENIZER_CHECK(!out.empty(), "{}: an empty token", where);
  return out;
}

bool null_or_absent(const json& obj, const char* key) {
  return !obj.contains(key) || obj.at(key).is_null();
}

// A piece's merges, lowest rank first, leftmost among equal ranks (as `tokenizers` applies them).
struct Symbol {
  int32_t id;
  int32_t prev,
      next;  // neighbours in the piece; -1 at the ends; id -1: merged into its left neighbour
};

struct Candidate {
  int32_t rank, left;  // the pair's rank; the left symbol's position
  int32_t merged;
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : left > o.left;
  }
};

}  // namespace

const std::string& byte_level_char(uint8_t byte) {
  return alphabet().chars[byte];
}

BpeTokenizer::BpeTokenizer() {
  for (int b = 0; b < 256; ++b) {
    tokens_.emplace_back(1, static_cast<char>(b));
    byte_token_[static_cast<size_t>(b)] = b;
  }
}

BpeTokenizer BpeTokenizer::from_merges(const std::vector<std::pair<int32_t, int32_t>>& merges) {
  BpeTokenizer t;
  std::unordered_map<std::string, int32_t> id_of;
  for (size_t i = 0; i < t.tokens_.size(); ++i)
    id_of.emplace(t.tokens_[i], static_cast<int32_t>(i));
  for (auto [a, b] : merges) {
    GPUML_CHECK(a >= 0 && b >= 0 && a < t.vocab_size() && b < t.vocab_size(),
                "BPE merge ({}, {}) of unknown ids", a, b);
    // Two merges may spell the same token ("a"+"bc", "ab"+"c"): it keeps its first id, as in
    // `tokenizers`.
    std::string joined = t.tokens_[static_cast<size_t>(a)] + t.tokens_[static_cast<size_t>(b)];
    auto [it, added] = id_of.emplace(joined, static_cast<int32_t>(t.tokens_.size()));
    if (added) t.tokens_.push_back(std::move(joined));
    GPUML_CHECK(
        t.merge_of_
            .emplace(pair_key(a, b), std::pair{static_cast<int32_t>(t.merges_.size()), it->second})
            .second,
        "BPE merge ({}, {}) given twice", a, b);
    t.merges_.emplace_back(a, b);
  }
  return t;
}

BpeTokenizer BpeTokenizer::from_json(std::string_view text, const std::string& where) {
  const json j = parse_json(text, where, ErrorKind::Io, "not a tokenizer.json?");
  TOKENIZER_CHECK(j.is_object() && j.contains("model") && j.at("model").is_object(),
                  "{}: expected a tokenizer.json object with a \"model\" (the format of the "
                  "`tokenizers` library)",
                  where);
  const json& model = j.at("model");
  TOKENIZER_CHECK(model.contains("type") && model.at("type") == "BPE",
                  "{}: model type {} is not supported (gpuml "
                  "reads BPE)",
                  where, model.contains("type") ? json_excerpt(model.at("type")) : "(none)");
  // What gpuml does not implement is refused, not ignored: it would encode differently.
  TOKENIZER_CHECK(null_or_absent(j, "normalizer"), "{}: a normalizer ({}) is not supported", where,
                  json_excerpt(j.at("normalizer")));
  TOKENIZER_CHECK(null_or_absent(j, "truncation") && null_or_absent(j, "padding"),
                  "{}: truncation and padding are not supported", where);
  const json pre = j.contains("pre_tokenizer") ? j.at("pre_tokenizer") : json();
  TOKENIZER_CHECK(pre.is_object() && pre.value("type", json()) == "ByteLevel",
                  "{}: the pre_tokenizer must be ByteLevel (GPT-2's), got {}", where,
                  json_excerpt(pre));
  TOKENIZER_CHECK(
      pre.value("add_prefix_space", json(false)) == false &&
          pre.value("use_regex", json(true)) == true,
      "{}: the ByteLevel pre_tokenizer must have add_prefix_space false and use_regex true", where);
  for (const char* key : {"decoder", "post_processor"}) {
    const json part = j.contains(key) ? j.at(key) : json();
    TOKENIZER_CHECK(
        part.is_null() || (part.is_object() && part.value("type", json()) == "ByteLevel"),
        "{}: the {} must be ByteLevel or null, got {}", where, key, json_excerpt(part));
  }
  TOKENIZER_CHECK(null_or_absent(model, "dropout"), "{}: BPE dropout is not supported", where);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    TOKENIZER_CHECK(null_or_absent(model, key) || model.at(key) == "", "{}: {} is not supported",
                    where, key);

  BpeTokenizer t;
  t.tokens_.clear();
  // Added tokens: matched as they are written (their text is not byte-level characters), with
  // ids of their own, in model.vocab too or not (`tokenizers` writes them there when it trained
  // with them, and not when they were added later).
  std::unordered_map<std::string, int64_t> added_id;
  if (!null_or_absent(j, "added_tokens")) {
    const json& added = j.at("added_tokens");
    TOKENIZER_CHECK(added.is_array(), "{}: added_tokens must be an array", where);
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string at = fmt::format("{}: added_tokens[{}]", where, i);
      const json& a = added[i];
      TOKENIZER_CHECK(
          a.is_object() && a.contains("id") && a.at("id").is_number_integer() &&
              a.contains("content") && a.at("content").is_string(),
          "{}: expected an object with an integer \"id\" and a string \"content\", got {}", at,
          json_excerpt(a));
      const auto id = a.at("id").get<int64_t>();
      std::string content = a.at("content").get<std::string>();
      TOKENIZER_CHECK(id >= 0 && id < kMaxVocabSize, "{}: the id {} is not in [0, {})", at, id,
                      kMaxVocabSize);
      TOKENIZER_CHECK(!content.empty(), "{}: an empty content", at);
      for (const char* key : {"single_word", "lstrip", "rstrip"})
        TOKENIZER_CHECK(!a.contains(key) || a.at(key) == false,
                        "{}: \"{}\": true is not supported (gpuml matches an added token's text "
                        "exactly, wherever it is)",
                        at, key);
      for (const char* key : {"normalized", "special"})
        TOKENIZER_CHECK(!a.contains(key) || a.at(key).is_boolean(),
                        "{}: \"{}\" must be true or false", at, key);
      TOKENIZER_CHECK(added_id.emplace(content, id).second, "{}: the text '{}' is added twice", at,
                      text_excerpt(content));
      t.added_texts_.push_back(std::move(content));
      t.added_ids_.push_back(static_cast<int32_t>(id));
      t.added_special_.push_back(a.value("special", false));
    }
  }
  TOKENIZER_CHECK(model.contains("vocab") && model.at("vocab").is_object(),
                  "{}: model.vocab must be an object", where);
  const json& vocab = model.at("vocab");
  size_t added_in_vocab = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) added_in_vocab += added_id.count(it.key());
  const size_t total = vocab.size() - added_in_vocab + t.added_texts_.size();
  TOKENIZER_CHECK(
      vocab.size() - added_in_vocab >= 256 && static_cast<int64_t>(total) <= kMaxVocabSize,
      "{}: model.vocab has {} tokens; a byte-level vocabulary has 256 to {} (added "
      "tokens included)",
      where, vocab.size() - added_in_vocab, kMaxVocabSize);
  t.tokens_.resize(total);
  std::vector<bool> seen(total, false);
  std::unordered_map<std::string, int32_t> id_of;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string at = fmt::format("{}: model.vocab[\"{}\"]", where, text_excerpt(it.key()));
    TOKENIZER_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 &&
                        it.value().get<int64_t>() < static_cast<int64_t>(total),
                    "{}: the id {} is not in [0, {}) (ids must number the tokens from 0)", at,
                    json_excerpt(it.value()), total);
    const auto id = it.value().get<int32_t>();
    if (auto added = added_id.find(it.key()); added != added_id.end()) {
      TOKENIZER_CHECK(added->second == id, "{}: id {}, but added_tokens gives this text id {}", at,
                      id, added->second);
      continue;
    }
    TOKENIZER_CHECK(!seen[static_cast<size_t>(id)], "{}: id {} is given to two tokens", at, id);
    seen[static_cast<size_t>(id)] = true;
    std::string bytes = from_byte_level(it.key(), at);
    TOKENIZER_CHECK(id_of.emplace(bytes, id).second, "{}: the same bytes as another token", at);
    if (bytes.size() == 1) t.byte_token_[static_cast<unsigned char>(bytes[0])] = id;
    t.tokens_[static_cast<size_t>(id)] = std::move(bytes);
  }
  for (size_t i = 0; i < t.added_texts_.size(); ++i) {
    const int32_t id = t.added_ids_[i];
    TOKENIZER_CHECK(static_cast<size_t>(id) < total && !seen[static_cast<size_t>(id)],
                    "{}: added_tokens[{}] ('{}'): id {} is {} (ids must number the tokens from 0, "
                    "each once)",
                    where, i, text_excerpt(t.added_texts_[i]), id,
                    static_cast<size_t>(id) < total ? "given to two tokens"
                                                    : fmt::format("not below {}", total));
    seen[static_cast<size_t>(id)] = true;
    t.tokens_[static_cast<size_t>(id)] = t.added_texts_[i];
  }
  for (int b = 0; b < 256; ++b)
    TOKENIZER_CHECK(
        id_of.count(std::string(1, static_cast<char>(b))) == 1,
        "{}: model.vocab has no token for byte 0x{:02x} ('{}'): a byte-level BPE needs all 256",
        where, b, byte_level_char(static_cast<uint8_t>(b)));

  TOKENIZER_CHECK(model.contains("merges") && model.at("merges").is_array(),
                  "{}: model.merges must be an array", where);
  const json& merges = model.at("merges");
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string at = fmt::format("{}: model.merges[{}]", where, r);
    const json& m = merges[r];
    std::string left, right;
    if (m.is_string()) {  // the older form: "a b"
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      TOKENIZER_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos,
                      "{}: '{}' is not two tokens separated by one space", at, text_excerpt(s));
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else {
      TOKENIZER_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                      "{}: expected \"a b\" or [\"a\", \"b\"], got {}", at, json_excerpt(m));
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    }
    const std::string a = from_byte_level(left, at), b = from_byte_level(right, at);
    auto ia = id_of.find(a), ib = id_of.find(b), ij = id_of.find(a + b);
    TOKENIZER_CHECK(ia != id_of.end() && ib != id_of.end(),
                    "{}: '{}' or '{}' is not in the vocabulary", at, text_excerpt(left),
                    text_excerpt(right));
    TOKENIZER_CHECK(ij != id_of.end(), "{}: the merged token '{}{}' is not in the vocabulary", at,
                    text_excerpt(left), text_excerpt(right));
    TOKENIZER_CHECK(t.merge_of_
                        .emplace(pair_key(ia->second, ib->second),
                                 std::pair{static_cast<int32_t>(r), ij->second})
                        .second,
                    "{}: the same pair appears twice", at);
    t.merges_.emplace_back(ia->second, ib->second);
  }
  if (model.contains("ignore_merges")) {
    TOKENIZER_CHECK(model.at("ignore_merges").is_boolean(),
                    "{}: model.ignore_merges must be true or false", where);
    t.ignore_merges_ = model.at("ignore_merges").get<bool>();
  }
  return t;
}

BpeTokenizer BpeTokenizer::read(const std::filesystem::path& path) {
  GPUML_CHECK_KIND(ErrorKind::Io, std::filesystem::is_regular_file(path),
                   "{}: no such tokenizer file", path.string());
  return from_json(read_file_bytes(path), path.string());
}

void BpeTokenizer::add_special_tokens(const std::vector<std::string>& contents) {
  for (const std::string& c : contents) {
    GPUML_CHECK(!c.empty(), "an empty special token");
    GPUML_CHECK(std::find(tokens_.begin(), tokens_.end(), c) == tokens_.end(),
                "special token '{}': already a token of the vocabulary (or given twice)",
                text_excerpt(c));
    GPUML_CHECK(vocab_size() < kMaxVocabSize, "special token '{}': the vocabulary is full ({})",
                text_excerpt(c), kMaxVocabSize);
    added_texts_.push_back(c);
    added_ids_.push_back(static_cast<int32_t>(vocab_size()));
    added_special_.push_back(true);
    tokens_.push_back(c);
  }
}

std::string BpeTokenizer::to_json() const {
  using ojson = nlohmann::ordered_json;
  std::vector<bool> is_added(tokens_.size(), false);
  for (int32_t id : added_ids_) is_added[static_cast<size_t>(id)] = true;
  ojson vocab = ojson::object();  // added tokens too, as they are written: `tokenizers` does so
  for (size_t i = 0; i < tokens_.size(); ++i)
    vocab[is_added[i] ? tokens_[i] : to_byte_level(tokens_[i])] = i;
  ojson added = ojson::array();
  for (size_t i = 0; i < added_texts_.size(); ++i)
    added.push_back({{"id", added_ids_[i]},
                     {"content", added_texts_[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", static_cast<bool>(added_special_[i])}});
  ojson merges = ojson::array();
  // "a b": the form every version of `tokenizers` reads (a byte-level token never holds a space).
  for (auto [a, b] : merges_)
    merges.push_back(to_byte_level(tokens_[static_cast<size_t>(a)]) + " " +
                     to_byte_level(tokens_[static_cast<size_t>(b)]));
  const ojson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", false},
                            {"trim_offsets", true},
                            {"use_regex", true}};
  ojson j = {{"version", "1.0"},
             {"truncation", nullptr},
             {"padding", nullptr},
             {"added_tokens", added},
             {"normalizer", nullptr},
             {"pre_tokenizer", byte_level},
             {"post_processor", byte_level},
             {"decoder", byte_level},
             {"model",
              {{"type", "BPE"},
               {"dropout", nullptr},
               {"unk_token", nullptr},
               {"continuing_subword_prefix", nullptr},
               {"end_of_word_suffix", nullptr},
               {"fuse_unk", false},
               {"byte_fallback", false},
               {"ignore_merges", ignore_merges_},
               {"vocab", vocab},
               {"merges", merges}}}};
  return j.dump(1) + "\n";
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    for (size_t i = 0; i < tokens_.size(); ++i)  // rare option: a linear search is enough
      if (tokens_[i] == piece) {
        out.push_back(static_cast<int32_t>(i));
        return;
      }
  }
  std::vector<Symbol> s(piece.size());
  for (size_t i = 0; i < piece.size(); ++i)
    s[i] = {byte_token_[static_cast<unsigned char>(piece[i])], static_cast<int32_t>(i) - 1,
            i + 1 < piece.size() ? static_cast<int32_t>(i) + 1 : -1};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto offer = [&](int32_t left) {
    const int32_t right = s[static_cast<size_t>(left)].next;
    if (right < 0) return;
    auto it =
        merge_of_.find(pair_key(s[static_cast<size_t>(left)].id, s[static_cast<size_t>(right)].id));
    if (it != merge_of_.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(piece.size()); ++i) offer(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = s[static_cast<size_t>(c.left)];
    if (left.id < 0 || left.next < 0) continue;  // merged away, or no right neighbour any more
    Symbol& right = s[static_cast<size_t>(left.next)];
    auto it = merge_of_.find(pair_key(left.id, right.id));
    if (it == merge_of_.end() || it->second.first != c.rank) continue;  // the pair changed since
    left.id = c.merged;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) s[static_cast<size_t>(right.next)].prev = c.left;
    if (left.prev >= 0) offer(left.prev);
    offer(c.left);
  }
  for (int32_t i = 0; i >= 0; i = s[static_cast<size_t>(i)].next)
    out.push_back(s[static_cast<size_t>(i)].id);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  const auto piece = [&](std::string_view p) { encode_piece(p, out); };
  split_specials(
      text, added_texts_, [&](std::string_view part) { split_pretokens(part, true, piece); },
      [&](size_t k) { out.push_back(added_ids_[k]); });
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    GPUML_CHECK(id >= 0 && id < vocab_size(),
                "token id {} is outside the tokenizer's vocabulary of {}", id, vocab_size());
    out += tokens_[static_cast<size_t>(id)];
  }
  return out;
}

}  // namespace gpuml::data
