// Training windows from a token dataset (`gpuml data pack CORPUS --tokenizer`, data/pack.h)
// within a host-memory limit, for corpora larger than RAM. A batch is `batch` random windows of
// block + 1 tokens (inputs the first block, targets the last block), as data/text.h draws them
// from text in memory, but only from the shards held in memory at the time:
//
//   - each epoch visits the shards in a Philox order of (seed, epoch), in groups of as many shards
//     as the memory limit holds (all of them when the split fits: then every batch draws from the
//     whole split, as in memory);
//   - an epoch is as many batches as cover the split's tokens once (tokens / (batch * block)),
//     shared among the groups in proportion to the windows they hold; a window never crosses
//     from one shard into the next;
//   - row r of batch b draws its window from Philox (seed, (epoch * batches + b) * batch + r), so
//     batch b of epoch e is a pure function of (dataset, options, e, b): seek() resumes exactly.
//
// Shards are read whole (CRC-32C checked, data/shard_reader.h) when their group comes up, and
// every token id is checked against the dataset's vocabulary before it is used; a damaged shard
// or an id beyond the vocabulary fails the run naming the shard file.
//
//   data::TokenShardOptions o;
//   o.block = 64;  o.batch = 12;  o.seed = 0;  o.memory_limit = 1 << 20;
//   data::TokenShardLoader train("tokens/", o);   // train.plan(): how the limit is spent
//   train.start_epoch(0);
//   while (std::optional<data::Batch> b = train.next()) step(b->x, b->y);  // x (12, 64) f32 ids, y
//   (12, 64) i64
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/batch_allocator.h"
#include "data/batch_source.h"
#include "data/shard_reader.h"

namespace gpuml::data {

struct TokenShardOptions {
  int64_t block = 64;
  int64_t batch = 12;
  uint64_t seed = 0;
  uint64_t memory_limit =
      0;  // bytes for shards in memory and batches; 0: default_data_memory_limit()
  std::string split = "train";
  std::shared_ptr<BatchMemory> memory;  // where batches are built (nullptr: plain memory)
};

struct TokenShardPlan {
  uint64_t limit = 0;
  uint64_t batch_bytes = 0;     // two batches: one being built, one held by the trainer
  int64_t resident_shards = 0;  // shards held at once (a group)
  uint64_t shard_bytes = 0;     // resident_shards x the largest shard
  int64_t groups = 0;           // groups per epoch (1: the whole split in memory)
  uint64_t total() const { return batch_bytes + shard_bytes; }
};

class TokenShardLoader : public BatchSource {
 public:
  TokenShardLoader(const std::filesystem::path& dir, TokenShardOptions options);

  int64_t batches_per_epoch() const override { return batches_; }
  void seek(LoaderPosition position) override;
  std::optional<Batch> next() override;
  LoaderPosition position() const override { return position_; }

  const TokenShardPlan& plan() const { return plan_; }
  int64_t tokens() const { return tokens_; }  // in the split
  int64_t vocab_size() const { return dataset_.manifest().vocab_size; }

 private:
  struct Group {
    std::vector<size_t> shards;  // indices into the split's shards
    int64_t windows = 0;
    int64_t first_batch = 0, end_batch = 0;
  };
  std::vector<Group> groups_of(int64_t epoch) const;
  void load(size_t group);  // of the current epoch's groups
  static constexpr size_t kNoGroup = ~size_t{0};

  ShardDataset dataset_;
  TokenShardOptions options_;
  const ShardSplit* split_ = nullptr;
  int token_bytes_ = 2;
  int64_t tokens_ = 0, batches_ = 1;
  TokenShardPlan plan_;
  LoaderPosition position_;
  // The group in memory: its shards' bytes and, per shard, its first window in the group's count.
  int64_t loaded_epoch_ = -1;
  size_t loaded_group_ = kNoGroup;
  std::vector<Group> epoch_groups_;
  std::vector<std::vector<uint8_t>> resident_;
  std::vector<int64_t> window_offsets_;
};

// Every token id of a split, in order (for evaluation: data::text_windows), checked against the
// vocabulary; at most max_tokens of them (the split's first).
std::vector<int32_t> read_token_split(const std::filesystem::path& dir, const std::string& split,
                                      int64_t max_tokens = int64_t{1} << 40);

// True for a directory holding a token dataset (a manifest with a "tokens" field).
bool is_token_dataset(const std::filesystem::path& dir);

}  // namespace gpuml::data
