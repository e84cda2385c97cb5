// Training windows from a token dataset (`gpuml data pack CORPUS --tokenizer`, data/pack.h)
// within a host-memory limit, for corpora larger than RAM. A batch is `batch` random windows of
// block + 1 tokens (inputs the first block, targets the last block), as data/text.h draws them
// from text in memory:
//
//   - row r of batch b of epoch e starts at a window drawn uniformly from all windows of the split
//     (Philox (seed, (e * batches + b) * batch + r)); a window never crosses from one shard into
//     the next. The draw does not depend on the memory limit, so a run streamed at any limit gets
//     exactly the batches of the same run with the whole split in memory, and seek() resumes
//     exactly;
//   - an epoch is as many batches as cover the split's tokens once (tokens / (batch * block)).
//
// Where the bytes come from is the only thing the limit decides: when the whole split fits, its
// shards are read whole (CRC-32C checked, data/shard_reader.h) and kept; otherwise each window's
// block + 1 tokens are read from its shard file (pread), and a shard is read whole once, CRC-32C
// and token ids checked, the first time a window falls in it (only then is it used). Reading
// windows costs a read call per row instead of re-reading shards for locality: an earlier loader
// drew from groups of resident shards, and the last group's stretch of the corpus biased the end
// of each epoch (validation loss up to 0.05 above the in-memory run, BENCHMARKS.md). Every token
// id is checked against the dataset's vocabulary before it is used; a damaged shard or an id
// beyond the vocabulary fails the run naming the shard file.
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
  // Data parallelism (data/batch_source.h): `batch` is the global batch; every process draws the
  // same global batch of windows and reads only its rows of it.
  BatchPart part = {};
};

struct TokenShardPlan {
  uint64_t limit = 0;
  uint64_t batch_bytes = 0;  // two batches: one being built, one held by the trainer
  bool whole_split = false;  // the split's shards all in memory; else windows read from the files
  uint64_t shard_bytes = 0;  // whole_split: the split's shards; else one shard (checked whole once)
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
  // Writes the block + 1 tokens of window w (of the split's count) to `tokens`.
  void read_window(int64_t w, std::vector<uint8_t>& tokens);
  void check_shard(size_t shard);  // reads it whole: CRC-32C and token ids; keeps it if whole_split

  ShardDataset dataset_;
  TokenShardOptions options_;
  const ShardSplit* split_ = nullptr;
  int token_bytes_ = 2;
  int64_t tokens_ = 0, batches_ = 1;
  TokenShardPlan plan_;
  LoaderPosition position_;
  // Per shard, its first window in the split's count (and the total last).
  std::vector<int64_t> window_offsets_;
  std::vector<bool> checked_;                   // per shard: read whole and found sound
  std::vector<std::vector<uint8_t>> resident_;  // whole_split: per shard, its bytes
  std::vector<uint8_t> scratch_, window_;       // a shard being checked; one window's bytes
};

// Every token id of a split, in order (for evaluation: data::text_windows), checked against the
// vocabulary; at most max_tokens of them (the split's first).
std::vector<int32_t> read_token_split(const std::filesystem::path& dir, const std::string& split,
                                      int64_t max_tokens = int64_t{1} << 40);

// True for a directory holding a token dataset (a manifest with a "tokens" field).
bool is_token_dataset(const std::filesystem::path& dir);

}  // namespace gpuml::data
