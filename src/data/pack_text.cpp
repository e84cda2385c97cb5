// `gpuml data pack CORPUS OUTDIR --tokenizer tokenizer.json`: a text corpus as a token dataset
// (data/pack.h says the layout).
#include <cstring>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/bpe.h"
#include "data/pack_sources.h"
#include "data/pretokenize.h"

namespace gpuml::data::pack_detail {

namespace fs = std::filesystem;

namespace {

constexpr double kTrainFraction = 0.9;  // the peer's split of text (data/text.h), by bytes here
constexpr size_t kCachedPieces = size_t{1} << 20;  // distinct pieces whose tokens are remembered

// Token ids as the field's little-endian u16 or u32, written a buffer at a time.
class TokenSink {
 public:
  TokenSink(ShardWriter& writer, int token_bytes) : writer_(writer), token_bytes_(token_bytes) {
    buffer_.reserve(kBufferTokens * static_cast<size_t>(token_bytes));
  }
  void add(const std::vector<int32_t>& ids) {
    for (int32_t id : ids) {
      const auto v = static_cast<uint32_t>(id);
      const size_t at = buffer_.size();
      buffer_.resize(at + static_cast<size_t>(token_bytes_));
      std::memcpy(buffer_.data() + at, &v,
                  static_cast<size_t>(token_bytes_));  // little-endian hosts only
    }
    if (buffer_.size() >= kBufferTokens * static_cast<size_t>(token_bytes_)) flush();
  }
  void flush() {
    if (buffer_.empty()) return;
    const auto n = static_cast<int64_t>(buffer_.size() / static_cast<size_t>(token_bytes_));
    writer_.write_records(buffer_.data(), n);
    written_ += n;
    buffer_.clear();
  }
  int64_t written() const { return written_; }

 private:
  static constexpr size_t kBufferTokens = size_t{1} << 18;
  ShardWriter& writer_;
  int token_bytes_;
  std::vector<uint8_t> buffer_;
  int64_t written_ = 0;
};

}  // namespace

PackReport pack_token_text(const std::string& corpus, const fs::path& out, const PackOptions& o) {
  const BpeTokenizer tokenizer = BpeTokenizer::read(o.tokenizer);
  const int token_bytes = tokenizer.vocab_size() <= (int64_t{1} << 16) ? 2 : 4;
  const auto corpus_bytes = static_cast<int64_t>(fs::file_size(corpus));
  const auto split_at = static_cast<int64_t>(kTrainFraction * static_cast<double>(corpus_bytes));
  ShardField field{"tokens", DType::u8, {}, token_bytes};
  ShardWriter w(out, {field}, o.shard_bytes);
  w.set_source(fmt::format("text {} through the tokenizer {}", corpus, o.tokenizer));
  w.set_tokenizer(read_file_bytes(o.tokenizer), tokenizer.vocab_size());
  w.begin_split("train");
  TokenSink sink(w, token_bytes);
  int64_t train_tokens = -1;
  // Corpora repeat their words: each distinct piece is encoded once (until the cache is full).
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  std::vector<int32_t> ids;
  // The split falls where a piece or an added token begins, at 90% of the bytes.
  const auto split_before = [&](int64_t offset) {
    if (train_tokens < 0 && offset >= split_at) {
      sink.flush();
      train_tokens = sink.written();
      w.begin_split("validation");
    }
  };
  const PretokenStreamReport r = stream_pretokens(
      corpus, o.allow_invalid_utf8,
      [&](std::string_view piece, int64_t offset) {
        split_before(offset);
        auto it = cache.find(std::string(piece));
        if (it == cache.end()) {
          ids.clear();
          tokenizer.encode_piece(piece, ids);
          if (cache.size() >= kCachedPieces) cache.clear();
          it = cache.emplace(std::string(piece), ids).first;
        }
        sink.add(it->second);
      },
      o.on_progress, tokenizer.added_texts(),
      [&](size_t added, int64_t offset) {
        split_before(offset);
        sink.add({tokenizer.added_id(added)});
      });
  sink.flush();
  const int64_t validation_tokens = train_tokens < 0 ? 0 : sink.written() - train_tokens;
  GPUML_CHECK(train_tokens > 0 && validation_tokens > 0,
              "{}: the corpus is too short to split: its first 90% must make training tokens and "
              "its last 10% "
              "validation tokens ({} bytes)",
              corpus, corpus_bytes);
  PackReport report{w.finish(), "", {}};
  report.description =
      fmt::format("text {}: {} tokens ({} train, {} validation) of a {}-token vocabulary, u{}",
                  corpus, train_tokens + validation_tokens, train_tokens, validation_tokens,
                  tokenizer.vocab_size(), token_bytes * 8);
  if (r.invalid_bytes > 0)
    report.notes.push_back(fmt::format(
        "{} bytes that are not UTF-8 were kept as bytes (--allow-invalid-utf8)", r.invalid_bytes));
  return report;
}

}  // namespace gpuml::data::pack_detail
