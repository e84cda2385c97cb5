#include "data/token_shards.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/philox.h"
#include "data/permutation.h"
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
  if (!options_.memory) options_.memory = BatchMemory::create();
  batches_ = std::max<int64_t>(1, tokens_ / (options_.batch * options_.block));

  plan_.limit = options_.memory_limit > 0 ? options_.memory_limit : default_data_memory_limit();
  plan_.batch_bytes = 2 * static_cast<uint64_t>(options_.batch * options_.block) * (4 + 8);
  const uint64_t largest = split_->max_shard_bytes();
  const uint64_t room = plan_.limit > plan_.batch_bytes ? plan_.limit - plan_.batch_bytes : 0;
  plan_.resident_shards = std::min<int64_t>(static_cast<int64_t>(split_->shards.size()),
                                            static_cast<int64_t>(room / largest));
  GPUML_CHECK(plan_.resident_shards >= 1,
              "--data-memory-limit {}: too small for one shard of {} and two batches of {}; raise "
              "it, or pack with a "
              "smaller --shard-size",
              format_bytes(plan_.limit), format_bytes(largest), format_bytes(plan_.batch_bytes));
  plan_.shard_bytes = static_cast<uint64_t>(plan_.resident_shards) * largest;
  plan_.groups = (static_cast<int64_t>(split_->shards.size()) + plan_.resident_shards - 1) /
                 plan_.resident_shards;
}

std::vector<TokenShardLoader::Group> TokenShardLoader::groups_of(int64_t epoch) const {
  const auto n = static_cast<int64_t>(split_->shards.size());
  // One group holding every shard keeps the stored order (nothing to shuffle: windows are random).
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (plan_.groups == 1) {
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  } else {
    order = philox_permutation(n, options_.seed, static_cast<uint64_t>(epoch));
  }
  std::vector<Group> groups;
  int64_t windows = 0;
  for (int64_t i = 0; i < n; i += plan_.resident_shards) {
    Group g;
    for (int64_t k = i; k < std::min(n, i + plan_.resident_shards); ++k) {
      const auto s = static_cast<size_t>(order[static_cast<size_t>(k)]);
      g.shards.push_back(s);
      g.windows += std::max<int64_t>(0, split_->shards[s].records - options_.block - 1);
    }
    windows += g.windows;
    groups.push_back(std::move(g));
  }
  // Batches in proportion to the windows before and within each group (a group without windows:
  // none).
  const auto share =
      [&](int64_t before) {  // floor(batches * before / windows), exact for the last group
        return before == windows
                   ? batches_
                   : static_cast<int64_t>(static_cast<long double>(batches_) * before / windows);
      };
  int64_t before = 0;
  for (Group& g : groups) {
    g.first_batch = share(before);
    before += g.windows;
    g.end_batch = share(before);
  }
  return groups;
}

void TokenShardLoader::load(size_t group) {
  if (loaded_group_ == group) return;
  const Group& g = epoch_groups_[group];
  const ShardManifest& m = dataset_.manifest();
  resident_.resize(g.shards.size());
  window_offsets_.assign(1, 0);
  for (size_t k = 0; k < g.shards.size(); ++k) {
    const ShardFile& shard = split_->shards[g.shards[k]];
    // Larger than the page cache could keep: tell the kernel the pages are not needed again.
    dataset_.read_shard(*split_, g.shards[k], resident_[k], /*drop_page_cache=*/plan_.groups > 1);
    check_token_ids(resident_[k].data(), shard.records, token_bytes_, m.vocab_size,
                    (dataset_.dir() / shard.file).string());
    window_offsets_.push_back(window_offsets_.back() +
                              std::max<int64_t>(0, shard.records - options_.block - 1));
  }
  loaded_group_ = group;
}

void TokenShardLoader::seek(LoaderPosition position) {
  GPUML_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch <= batches_,
              "token windows: cannot seek to epoch {} batch {} ({} batches per epoch)",
              position.epoch, position.batch, batches_);
  position_ = position;
}

std::optional<Batch> TokenShardLoader::next() {
  if (position_.batch >= batches_) return std::nullopt;
  if (loaded_epoch_ != position_.epoch) {
    const std::vector<Group> previous = std::move(epoch_groups_);
    epoch_groups_ = groups_of(position_.epoch);
    loaded_epoch_ = position_.epoch;
    // With one group the shards in memory stay: every epoch draws from all of them.
    if (epoch_groups_.size() != 1 || previous.size() != 1) loaded_group_ = kNoGroup;
  }
  size_t group = 0;
  while (group + 1 < epoch_groups_.size() && epoch_groups_[group].end_batch <= position_.batch)
    ++group;
  load(group);
  const int64_t b = options_.batch, t = options_.block;
  Batch out{options_.memory->empty({b, t}, DType::f32), options_.memory->empty({b, t}, DType::i64),
            position_.epoch, position_.batch};
  const int64_t windows = window_offsets_.back();
  const uint64_t first = static_cast<uint64_t>(position_.epoch * batches_ + position_.batch) *
                         static_cast<uint64_t>(b);
  float* x = out.x.data<float>();
  int64_t* y = out.y.data<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    const int64_t w = window_start(options_.seed, first + static_cast<uint64_t>(r), windows);
    const auto shard =
        static_cast<size_t>(std::upper_bound(window_offsets_.begin(), window_offsets_.end(), w) -
                            window_offsets_.begin() - 1);
    const int64_t start = w - window_offsets_[shard];
    const uint8_t* data = resident_[shard].data();
    for (int64_t j = 0; j < t; ++j) {
      x[r * t + j] = static_cast<float>(token_at(data, start + j, token_bytes_));
      y[r * t + j] = token_at(data, start + j + 1, token_bytes_);
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
