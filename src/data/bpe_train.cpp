#include "data/bpe_train.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "data/pretokenize.h"

namespace gpuml::data {

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(uint64_t key) {
  return static_cast<int32_t>(key >> 32);
}
int32_t right_of(uint64_t key) {
  return static_cast<int32_t>(key & 0xFFFFFFFFu);
}

struct HeapEntry {
  int64_t count;
  uint64_t key;
  // The most frequent pair first; among equal counts the pair of smaller ids.
  bool operator<(const HeapEntry& o) const {
    return count != o.count ? count < o.count : key > o.key;
  }
};

// Streams the corpus through the pre-tokenizer and counts its distinct pieces.
std::unordered_map<std::string, int64_t> count_pieces(const std::string& corpus,
                                                      const BpeTrainOptions& o,
                                                      BpeTrainReport& report) {
  std::unordered_map<std::string, int64_t> counts;
  const PretokenStreamReport r = stream_pretokens(
      corpus, o.allow_invalid_utf8,
      [&](std::string_view piece, int64_t) {
        ++counts[std::string(piece)];
        ++report.pieces;
      },
      o.on_read, o.special_tokens, [](size_t, int64_t) {});
  report.bytes = r.bytes;
  report.invalid_bytes = r.invalid_bytes;
  return counts;
}

}  // namespace

BpeTrainReport train_bpe(const std::string& corpus, const BpeTrainOptions& o) {
  GPUML_CHECK(
      o.vocab_size >= 257 && o.vocab_size <= kMaxVocabSize,
      "--vocab-size {}: a byte-level BPE has 256 byte tokens and at least one merge (257 to {})",
      o.vocab_size, kMaxVocabSize);
  const auto specials = static_cast<int64_t>(o.special_tokens.size());
  GPUML_CHECK(o.vocab_size >= 257 + specials,
              "--vocab-size {}: too small for 256 byte tokens, {} special tokens and a merge",
              o.vocab_size, specials);
  for (const std::string& s : o.special_tokens)
    GPUML_CHECK(!s.empty(), "--special-tokens: an empty special token");
  const int64_t learned = o.vocab_size - specials;  // byte tokens and merges
  BpeTrainReport report;
  std::vector<std::vector<int32_t>> words;  // each distinct piece as token ids, bytes at first
  std::vector<int64_t> freq;
  {
    std::unordered_map<std::string, int64_t> counts = count_pieces(corpus, o, report);
    report.distinct = static_cast<int64_t>(counts.size());
    words.reserve(counts.size());
    for (auto& [piece, n] : counts) {
      std::vector<int32_t> w(piece.size());
      for (size_t i = 0; i < piece.size(); ++i) w[i] = static_cast<unsigned char>(piece[i]);
      words.push_back(std::move(w));
      freq.push_back(n);
    }
  }

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>>
      where;  // pair -> words holding it (maybe stale)
  for (size_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t key = pair_key(words[w][i], words[w][i + 1]);
      pair_count[key] += freq[w];
      where[key].push_back(static_cast<int32_t>(w));
    }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [key, n] : pair_count) heap.push({n, key});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<std::string>
      token_bytes;  // id -> bytes, to spot a merge that spells an existing token
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    token_bytes.emplace_back(1, static_cast<char>(b));
    id_of.emplace(token_bytes.back(), b);
  }
  const int64_t wanted = learned - 256;
  std::unordered_set<uint64_t> changed;
  while (static_cast<int64_t>(token_bytes.size()) < learned && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    auto current = pair_count.find(top.key);
    const int64_t now = current == pair_count.end() ? 0 : current->second;
    if (now != top.count) {  // stale: its count changed after it was pushed
      if (now > 0) heap.push({now, top.key});
      continue;
    }
    const int32_t a = left_of(top.key), b = right_of(top.key);
    std::string joined = token_bytes[static_cast<size_t>(a)] + token_bytes[static_cast<size_t>(b)];
    auto [it, added] = id_of.emplace(joined, static_cast<int32_t>(token_bytes.size()));
    if (added) token_bytes.push_back(std::move(joined));
    const int32_t merged = it->second;
    merges.emplace_back(a, b);

    std::vector<int32_t> holders = std::move(where[top.key]);
    where.erase(top.key);
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    changed.clear();
    for (int32_t w : holders) {
      std::vector<int32_t>& word = words[static_cast<size_t>(w)];
      bool holds = false;
      for (size_t i = 0; i + 1 < word.size() && !holds; ++i)
        holds = word[i] == a && word[i + 1] == b;
      if (!holds) continue;
      const int64_t f = freq[static_cast<size_t>(w)];
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        const uint64_t key = pair_key(word[i], word[i + 1]);
        pair_count[key] -= f;
        changed.insert(key);
      }
      size_t out = 0;
      for (size_t i = 0; i < word.size(); ++out) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          word[out] = merged;
          i += 2;
        } else {
          word[out] = word[i++];
        }
      }
      word.resize(out);
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        const uint64_t key = pair_key(word[i], word[i + 1]);
        pair_count[key] += f;
        where[key].push_back(w);
        changed.insert(key);
      }
    }
    for (uint64_t key : changed) {
      auto c = pair_count.find(key);
      if (c == pair_count.end()) continue;
      if (c->second > 0)
        heap.push({c->second, key});
      else
        pair_count.erase(c);
    }
    if (o.on_merge &&
        (merges.size() % 64 == 0 || static_cast<int64_t>(token_bytes.size()) == learned))
      o.on_merge(static_cast<int64_t>(token_bytes.size()) - 256, wanted);
  }
  if (static_cast<int64_t>(token_bytes.size()) < learned)
    report.note =
        fmt::format("the corpus ran out of pairs to merge: the vocabulary has {} tokens, not {}",
                    static_cast<int64_t>(token_bytes.size()) + specials, o.vocab_size);
  report.tokenizer = BpeTokenizer::from_merges(merges);
  report.tokenizer.add_special_tokens(o.special_tokens);
  return report;
}

}  // namespace gpuml::data
