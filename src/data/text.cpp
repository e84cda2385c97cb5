#include "data/text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "core/error.h"
#include "core/philox.h"

namespace gpuml::data {

namespace {

// The code point starting at text[i] (advancing i), or -1 when the bytes there are not UTF-8
// (a stray continuation byte, a truncated or overlong sequence, a surrogate, beyond U+10FFFF).
int32_t decode_utf8(const std::string& text, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return static_cast<int32_t>(text[i++]);
  int length = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 0;
  if (length == 0 || i + static_cast<size_t>(length) > text.size()) return -1;
  int32_t cp = lead & (0x7F >> length);
  for (int k = 1; k < length; ++k) {
    const unsigned char c = byte(i + static_cast<size_t>(k));
    if ((c & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr int32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  i += static_cast<size_t>(length);
  return cp;
}

std::string encode_utf8(int32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// A window's first character: uniform over the starts the peer draws from ([0, n - block - 1)).
int64_t window_start(uint64_t seed, uint64_t counter, int64_t starts) {
  const PhiloxBlock b = philox4x32_10(counter, seed);
  const uint64_t bits = (static_cast<uint64_t>(b.v[1]) << 32) | b.v[0];
  return static_cast<int64_t>(bits % static_cast<uint64_t>(starts));
}

// The peer's split: the first int(0.9 * n) tokens train, the rest validate; each needs a window.
void split_corpus(TextCorpus& out, const std::vector<int32_t>& tokens, const std::string& name, int64_t block,
                  const char* unit) {
  out.characters = static_cast<int64_t>(tokens.size());
  const auto n_train = static_cast<int64_t>(0.9 * static_cast<double>(out.characters));  // the peer's int(0.9 * n)
  GPUML_CHECK(n_train >= block + 2 && out.characters - n_train >= block + 1,
              "--data {}: {} {} are too few for the model's window of {}: the first 90% (training) needs at "
              "least {} and the last 10% (validation) at least {}",
              name, out.characters, unit, block, block + 2, block + 1);
  out.train.assign(tokens.begin(), tokens.begin() + n_train);
  out.validation.assign(tokens.begin() + n_train, tokens.end());
}

}  // namespace

TextCorpus read_text_corpus(const std::string& path, int64_t block) {
  GPUML_CHECK_KIND(ErrorKind::Io, std::filesystem::is_regular_file(path), "--data {}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  GPUML_CHECK_KIND(ErrorKind::Io, in.good(), "--data {}: cannot open the file", path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  GPUML_CHECK_KIND(ErrorKind::Io, !text.empty(), "--data {}: the text file is empty", path);
  std::vector<int32_t> points;
  points.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    GPUML_CHECK_KIND(ErrorKind::Io, text[i] != '\0',
                     "--data {}: byte {} is a NUL: this looks like a binary file, not text", path, at);
    const int32_t cp = decode_utf8(text, i);
    GPUML_CHECK_KIND(ErrorKind::Io, cp >= 0, "--data {}: byte {} (0x{:02x}) is not UTF-8; gpuml reads text as UTF-8",
                     path, at, static_cast<unsigned char>(text[at]));
    points.push_back(cp);
  }
  std::vector<int32_t> distinct = points;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  std::map<int32_t, int32_t> id;
  TextCorpus out;
  for (int32_t cp : distinct) {
    id[cp] = static_cast<int32_t>(out.vocabulary.size());
    out.vocabulary.push_back(encode_utf8(cp));
  }
  out.vocab = static_cast<int64_t>(out.vocabulary.size());
  for (int32_t& p : points) p = id[p];
  split_corpus(out, points, path, block, "characters");
  return out;
}

bool is_random_tokens(const std::string& spec) { return spec.rfind("random-tokens:", 0) == 0; }

TextCorpus random_token_corpus(const std::string& spec, int64_t block, uint64_t seed) {
  const std::string rest = spec.substr(std::string("random-tokens:").size());
  const size_t colon = rest.find(':');
  const auto number = [&](const std::string& text, const char* what) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    GPUML_CHECK(used == text.size() && !text.empty() && v >= 1,
                "--data {}: {} '{}' is not a positive whole number (expected random-tokens:VOCAB[:COUNT])", spec, what,
                text);
    return static_cast<int64_t>(v);
  };
  TextCorpus out;
  out.vocab = number(rest.substr(0, colon), "VOCAB");
  out.characters = colon == std::string::npos ? 2'000'000 : number(rest.substr(colon + 1), "COUNT");
  GPUML_CHECK(out.vocab >= 2 && out.vocab <= (int64_t{1} << 24),
              "--data {}: VOCAB must be in [2, 16777216] (token ids travel as float32), got {}", spec, out.vocab);
  GPUML_CHECK(out.characters <= (int64_t{1} << 31), "--data {}: COUNT must be <= 2^31, got {}", spec, out.characters);
  std::vector<int32_t> tokens(static_cast<size_t>(out.characters));
  const uint64_t key = seed ^ 0x52414e44544f4bULL;  // a stream of its own, apart from the windows' draws
  for (int64_t i = 0; i < out.characters; i += 4) {
    const PhiloxBlock b = philox4x32_10(static_cast<uint64_t>(i / 4), key);
    for (int64_t k = 0; k < 4 && i + k < out.characters; ++k)
      tokens[static_cast<size_t>(i + k)] = static_cast<int32_t>(b.v[k] % static_cast<uint32_t>(out.vocab));
  }
  split_corpus(out, tokens, spec, block, "tokens");
  return out;
}

TextWindowLoader::TextWindowLoader(std::vector<int32_t> tokens, TextWindowOptions options)
    : tokens_(std::move(tokens)), options_(std::move(options)) {
  GPUML_CHECK(options_.block >= 1 && options_.batch >= 1, "text windows: block {} and batch {} must be >= 1",
              options_.block, options_.batch);
  GPUML_CHECK(static_cast<int64_t>(tokens_.size()) >= options_.block + 2,
              "text windows: {} characters hold no window of {} + 1", tokens_.size(), options_.block);
  options_.part.check(options_.batch, "text windows");
  if (!options_.memory) options_.memory = BatchMemory::create();
  batches_ = std::max<int64_t>(1, static_cast<int64_t>(tokens_.size()) / (options_.batch * options_.block));
}

void TextWindowLoader::seek(LoaderPosition position) {
  GPUML_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch <= batches_,
              "text windows: cannot seek to epoch {} batch {} ({} batches per epoch)", position.epoch, position.batch,
              batches_);
  position_ = position;
}

std::optional<Batch> TextWindowLoader::next() {
  if (position_.batch >= batches_) return std::nullopt;
  const BatchPart::Rows mine = options_.part.rows_of(options_.batch);
  const int64_t b = mine.count, t = options_.block;
  const int64_t starts = static_cast<int64_t>(tokens_.size()) - t - 1;
  Batch out{options_.memory->empty({b, t}, DType::f32), options_.memory->empty({b, t}, DType::i64), position_.epoch,
            position_.batch};
  // Row r of this part is row mine.first + r of the global batch: the same draw as one process's.
  const uint64_t first =
      static_cast<uint64_t>(position_.epoch * batches_ + position_.batch) * static_cast<uint64_t>(options_.batch) +
      static_cast<uint64_t>(mine.first);
  for (int64_t r = 0; r < b; ++r) {
    const int32_t* w = tokens_.data() + window_start(options_.seed, first + static_cast<uint64_t>(r), starts);
    for (int64_t j = 0; j < t; ++j) {
      out.x.data<float>()[r * t + j] = static_cast<float>(w[j]);
      out.y.data<int64_t>()[r * t + j] = w[j + 1];
    }
  }
  ++position_.batch;
  return out;
}

InMemoryDataset text_windows(const std::vector<int32_t>& tokens, int64_t block, int64_t max_windows) {
  const int64_t n = std::min<int64_t>(max_windows, (static_cast<int64_t>(tokens.size()) - 1) / block);
  GPUML_CHECK(n >= 1, "text windows: {} characters hold no window of {} + 1", tokens.size(), block);
  Tensor x = Tensor::empty({n, block}, DType::i32), y = Tensor::empty({n, block}, DType::i32);
  for (int64_t i = 0; i < n * block; ++i) {
    x.data<int32_t>()[i] = tokens[static_cast<size_t>(i)];
    y.data<int32_t>()[i] = tokens[static_cast<size_t>(i) + 1];
  }
  return InMemoryDataset(x, y);
}

}  // namespace gpuml::data
