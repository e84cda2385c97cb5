#include "data/token_shards.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/philox.h"
#include "data/shard_loader.h"

namespace gpuml::data {

namespace fs = std::filesystem;

namespace {

// A window's first token among `starts` (uniform; the modulo bias is below 2^-30 for any split).
int64_t window_start(uint64_t seed, uint64_t counter, int64_t starts) {
  const PhiloxBlock b = philox4x32_10(counter, seed);
  const uint64_t bits = (static_cast<uint64_t>(b.v[1]) << 32) | b.v[0];
  return static_cast<int64_t>(bits % static_cast<uint64_t>(starts));
}

int64_t token_at(const uint8_t* data, int64_t i, int token_bytes) {
  if (token_bytes == 2) {
    uint16_t v;
    std::memcpy(&v, data + i * 2, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, data + i * 4, 4);
  return v;
}

}  // namespace

bool is_token_dataset(const fs::path& dir) {
  if (!is_shard_dataset(dir)) return false;
  try {
    return read_shard_manifest(dir).is_token_dataset();
  } catch (const Error&) {
    return false;  // a damaged manifest: the shard path reports it
  }
}

TokenShardLoader::TokenShardLoader(const fs::path& dir, TokenShardOptions options)
    : dataset_(dir), options_(std::move(options)) {
  const ShardManifest& m = dataset_.manifest();
  GPUML_CHECK(m.is_token_dataset(),
              "{}: not a token dataset (no \"tokens\" field; pack text with `gpuml data pack "
              "CORPUS DIR --tokenizer tokenizer.json`)",
              dir.string());
  GPUML_CHECK(options_.block >= 1 && options_.batch >= 1,
              "token windows: block {} and batch {} must be >= 1", options_.block, options_.batch);
  split_ = &m.split(options_.split);
  token_bytes_ = m.field("tokens").token_bytes;
  tokens_ = split_->records;
  int64_t windows = 0;
  for (const ShardFile& s : split_->shards)
    windows += std::max<int64_t>(0, s.records - options_.block - 1);
  GPUML_CHECK(windows > 0,
              "{}: no shard of split '{}' holds a window of {} + 1 tokens (the largest has {}): "
              "pack with a larger "
              "--shard-size",
              dir.string(), options_.split, options_.block,
              split_->max_shard_bytes() / token_bytes_);
  options_.part.check(options_.batch, "token windows");
  if (!options_.memory) options_.memory = BatchMemory::create();
  batches_ = std::max<int64_t>(1, tokens_ / (options_.batch * options_.block));
  window_offsets_.assign(1, 0);
  for (const ShardFile& s : split_->shards)
    window_offsets_.push_back(window_offsets_.back() +
                              std::max<int64_t>(0, s.records - options_.block - 1));
  checked_.assign(split_->shards.size(), false);

  plan_.limit = options_.memory_limit > 0 ? options_.memory_limit : default_data_memory_limit();
  plan_.batch_bytes = 2 * static_cast<uint64_t>(options_.batch * options_.block) * (4 + 8);
  const uint64_t largest = split_->max_shard_bytes();
  uint64_t split_bytes = 0;
  for (const ShardFile& s : split_->shards) split_bytes += s.bytes;
  const uint64_t room = plan_.limit > plan_.batch_bytes ? plan_.limit - plan_.batch_bytes : 0;
  GPUML_CHECK(room >= largest,
              "--data-memory-limit {}: too small for one shard of {} and two batches of {}; raise "
              "it, or pack with a "
              "smaller --shard-size",
              format_bytes(plan_.limit), format_bytes(largest), format_bytes(plan_.batch_bytes));
  plan_.whole_split = room >= split_bytes;
  plan_.shard_bytes = plan_.whole_split ? split_bytes : largest;
  if (plan_.whole_split) resident_.resize(split_->shards.size());
}

void TokenShardLoader::check_shard(size_t shard) {
  const ShardFile& file = split_->shards[shard];
  std::vector<uint8_t>& bytes = plan_.whole_split ? resident_[shard] : scratch_;
  // Not dropped from the page cache: its windows are read from the file afterwards.
  dataset_.read_shard(*split_, shard, bytes);
  check_token_ids(bytes.data(), file.records, token_bytes_, dataset_.manifest().vocab_size,
                  (dataset_.dir() / file.file).string());
  checked_[shard] = true;
}

namespace {

// Closes the descriptor on every path out, errors included.
struct WindowFile {
  int fd;
  ~WindowFile() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void TokenShardLoader::read_window(int64_t w, std::vector<uint8_t>& tokens) {
  const auto shard =
      static_cast<size_t>(std::upper_bound(window_offsets_.begin(), window_offsets_.end(), w) -
                          window_offsets_.begin() - 1);
  if (!checked_[shard]) check_shard(shard);
  const int64_t start = w - window_offsets_[shard];
  const auto length = static_cast<size_t>((options_.block + 1) * token_bytes_);
  tokens.resize(length);
  if (plan_.whole_split) {
    std::memcpy(tokens.data(), resident_[shard].data() + start * token_bytes_, length);
    return;
  }
  const ShardFile& file = split_->shards[shard];
  const fs::path path = dataset_.dir() / file.file;
  WindowFile f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  GPUML_CHECK_KIND(ErrorKind::Io, f.fd >= 0, "{}: cannot open shard: {}", path.string(),
                   std::strerror(errno));
  size_t done = 0;
  while (done < length) {
    const ssize_t n =
        ::pread(f.fd, tokens.data() + done, length - done,
                static_cast<off_t>(start * token_bytes_ + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    GPUML_CHECK_KIND(ErrorKind::Io, n >= 0, "{}: read failed: {}", path.string(),
                     std::strerror(errno));
    GPUML_CHECK_KIND(
        ErrorKind::Io, n > 0,
        "{}: damaged shard: shorter than when it was checked (changed during the run?)",
        path.string());
    done += static_cast<size_t>(n);
  }
  // The shard was checked whole; this guards the embedding against a file changed since.
  check_token_ids(tokens.data(), options_.block + 1, token_bytes_, dataset_.manifest().vocab_size,
                  path.string());
}

void TokenShardLoader::seek(LoaderPosition position) {
  GPUML_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch <= batches_,
              "token windows: cannot seek to epoch {} batch {} ({} batches per epoch)",
              position.epoch, position.batch, batches_);
  position_ = position;
}

std::optional<Batch> TokenShardLoader::next() {
  if (position_.batch >= batches_) return std::nullopt;
  const BatchPart::Rows mine = options_.part.rows_of(options_.batch);
  const int64_t b = mine.count, t = options_.block;
  Batch out{options_.memory->empty({b, t}, DType::f32), options_.memory->empty({b, t}, DType::i64),
            position_.epoch, position_.batch};
  const int64_t windows = window_offsets_.back();
  // Row r of this part is row mine.first + r of the global batch: the same draw as one process's.
  const uint64_t first = static_cast<uint64_t>(position_.epoch * batches_ + position_.batch) *
                             static_cast<uint64_t>(options_.batch) +
                         static_cast<uint64_t>(mine.first);
  float* x = out.x.data<float>();
  int64_t* y = out.y.data<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    read_window(window_start(options_.seed, first + static_cast<uint64_t>(r), windows), window_);
    const uint8_t* data = window_.data();
    for (int64_t j = 0; j < t; ++j) {
      x[r * t + j] = static_cast<float>(token_at(data, j, token_bytes_));
      y[r * t + j] = token_at(data, j + 1, token_bytes_);
    }
  }
  ++position_.batch;
  return out;
}

std::vector<int32_t> read_token_split(const fs::path& dir, const std::string& split_name,
                                      int64_t max_tokens) {
  ShardDataset ds(dir);
  const ShardManifest& m = ds.manifest();
  GPUML_CHECK(m.is_token_dataset(), "{}: not a token dataset", dir.string());
  const ShardSplit& split = m.split(split_name);
  const int token_bytes = m.field("tokens").token_bytes;
  std::vector<int32_t> out;
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < split.shards.size() && static_cast<int64_t>(out.size()) < max_tokens;
       ++i) {
    ds.read_shard(split, i, buffer);
    const int64_t n = split.shards[i].records;
    check_token_ids(buffer.data(), n, token_bytes, m.vocab_size,
                    (dir / split.shards[i].file).string());
    for (int64_t k = 0; k < n && static_cast<int64_t>(out.size()) < max_tokens; ++k)
      out.push_back(static_cast<int32_t>(token_at(buffer.data(), k, token_bytes)));
  }
  return out;
}

}  // namespace gpuml::data
