#include "data/bpe_train.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "data/pretokenize.h"

namespace gpuml::data {

namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;
// A piece still open at a chunk's end waits for the next chunk, up to this size; a longer one
// (a megabyte without a space or a change of character class) is cut there.
constexpr size_t kMaxCarryBytes = size_t{4} << 20;

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
int32_t left_of(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t right_of(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

struct HeapEntry {
  int64_t count;
  uint64_t key;
  // The most frequent pair first; among equal counts the pair of smaller ids.
  bool operator<(const HeapEntry& o) const { return count != o.count ? count < o.count : key > o.key; }
};

// Streams the corpus through the pre-tokenizer and counts its distinct pieces.
std::unordered_map<std::string, int64_t> count_pieces(const std::string& corpus, const BpeTrainOptions& o,
                                                      BpeTrainReport& report) {
  namespace fs = std::filesystem;
  GPUML_CHECK_KIND(ErrorKind::Io, fs::is_regular_file(corpus), "{}: no such file", corpus);
  std::ifstream in(corpus, std::ios::binary);
  GPUML_CHECK_KIND(ErrorKind::Io, in.good(), "{}: cannot open the file", corpus);
  const auto size = static_cast<int64_t>(fs::file_size(corpus));
  GPUML_CHECK_KIND(ErrorKind::Io, size > 0, "{}: the corpus is empty", corpus);
  std::unordered_map<std::string, int64_t> counts;
  std::string data;           // the carried bytes, then the new chunk
  int64_t data_offset = 0;    // where data[0] is in the file
  int64_t read = 0;
  int64_t checked = 0;        // bytes before this offset were checked for UTF-8 already
  std::vector<char> chunk(kChunkBytes);
  const auto count = [&](std::string_view piece) {
    ++counts[std::string(piece)];
    ++report.pieces;
  };
  while (true) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<size_t>(in.gcount());
    GPUML_CHECK_KIND(ErrorKind::Io, got > 0 || in.eof(), "{}: read error at byte {}", corpus, read);
    read += static_cast<int64_t>(got);
    const bool at_end = got == 0 || read >= size;
    data.append(chunk.data(), got);
    const size_t usable = at_end ? data.size() : utf8_safe_end(data);
    // UTF-8 is checked on the bytes handed to the pre-tokenizer (a carry again: it is small).
    for (size_t from = 0; from < usable;) {
      const size_t bad = first_invalid_utf8(std::string_view(data).substr(from, usable - from));
      if (bad == std::string_view::npos) break;
      GPUML_CHECK_KIND(ErrorKind::Io, o.allow_invalid_utf8,
                       "{}: byte {} (0x{:02x}) is not UTF-8. gpuml reads a corpus as UTF-8; with --allow-invalid-utf8 "
                       "such bytes are kept as bytes (byte-level fallback: every byte has a token), though the "
                       "`tokenizers` library, which takes Unicode strings, cannot encode that file the same way",
                       corpus, data_offset + static_cast<int64_t>(from + bad),
                       static_cast<unsigned char>(data[from + bad]));
      if (data_offset + static_cast<int64_t>(from + bad) >= checked) ++report.invalid_bytes;  // not a carry's again
      from += bad + 1;
    }
    checked = data_offset + static_cast<int64_t>(usable);
    const std::string_view view = std::string_view(data).substr(0, usable);
    size_t cut = split_pretokens(view, at_end, count);
    if (!at_end && data.size() - cut > kMaxCarryBytes) cut = split_pretokens(view.substr(cut), true, count) + cut;
    data_offset += static_cast<int64_t>(cut);
    data.erase(0, cut);
    if (o.on_read) o.on_read(std::min(read, size), size);
    if (at_end) break;
  }
  report.bytes = read;
  return counts;
}

}  // namespace

BpeTrainReport train_bpe(const std::string& corpus, const BpeTrainOptions& o) {
  GPUML_CHECK(o.vocab_size >= 257 && o.vocab_size <= kMaxVocabSize,
              "--vocab-size {}: a byte-level BPE has 256 byte tokens and at least one merge (257 to {})", o.vocab_size,
              kMaxVocabSize);
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
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words holding it (maybe stale)
  for (size_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t key = pair_key(words[w][i], words[w][i + 1]);
      pair_count[key] += freq[w];
      where[key].push_back(static_cast<int32_t>(w));
    }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [key, n] : pair_count) heap.push({n, key});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<std::string> token_bytes;  // id -> bytes, to spot a merge that spells an existing token
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    token_bytes.emplace_back(1, static_cast<char>(b));
    id_of.emplace(token_bytes.back(), b);
  }
  const int64_t wanted = o.vocab_size - 256;
  std::unordered_set<uint64_t> changed;
  while (static_cast<int64_t>(token_bytes.size()) < o.vocab_size && !heap.empty()) {
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
      for (size_t i = 0; i + 1 < word.size() && !holds; ++i) holds = word[i] == a && word[i + 1] == b;
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
      if (c->second > 0) heap.push({c->second, key});
      else pair_count.erase(c);
    }
    if (o.on_merge && (merges.size() % 64 == 0 || static_cast<int64_t>(token_bytes.size()) == o.vocab_size))
      o.on_merge(static_cast<int64_t>(token_bytes.size()) - 256, wanted);
  }
  if (static_cast<int64_t>(token_bytes.size()) < o.vocab_size)
    report.note = fmt::format("the corpus ran out of pairs to merge: the vocabulary has {} tokens, not {}",
                              token_bytes.size(), o.vocab_size);
  report.tokenizer = BpeTokenizer::from_merges(merges);
  return report;
}

}  // namespace gpuml::data
