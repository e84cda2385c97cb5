// Every loader's part of a global batch (data/batch_source.h BatchPart), in one process: the parts
// of batch b, put together in rank order, are batch b of one loader of the whole global batch. For
// shards that means each record lands in exactly one rank's batch once per epoch (the records'
// features hold their ids, so the batches say which records they carry); for text and token
// windows, the same windows as one process draws.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "data/bpe_train.h"
#include "data/pack.h"
#include "data/shard_loader.h"
#include "data/shard_writer.h"
#include "data/text.h"
#include "data/token_shards.h"
#include "e2e_support.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;
using gpuml::testing::TempDir;

// n records whose x (i32, (1,)) holds the record id and whose label is id % 7, in shards of
// `per_shard` records.
void write_id_dataset(const fs::path& dir, int64_t n, int64_t per_shard) {
  ShardWriter w(dir, {{"x", DType::i32, {1}}, {"y", DType::i64, {}}},
                static_cast<uint64_t>(per_shard) * 12);
  w.begin_split("train");
  for (int64_t id = 0; id < n; ++id) {
    uint8_t record[12];
    const int32_t x = static_cast<int32_t>(id);
    const int64_t y = id % 7;
    std::memcpy(record, &x, 4);
    std::memcpy(record + 4, &y, 8);
    w.write_records(record, 1);
  }
  w.finish();
}

// The record ids of every batch of an epoch, from `from` on.
std::vector<std::vector<int64_t>> epoch_ids(BatchSource& loader, LoaderPosition from) {
  loader.seek(from);
  std::vector<std::vector<int64_t>> out;
  while (std::optional<Batch> b = loader.next()) {
    std::vector<int64_t> ids;
    for (int64_t r = 0; r < b->y.dim(0); ++r) {
      const auto id = static_cast<int64_t>(b->x.data<float>()[r]);
      EXPECT_EQ(b->y.data<int64_t>()[r], id % 7);
      ids.push_back(id);
    }
    out.push_back(ids);
  }
  return out;
}

ShardLoaderOptions shard_options(int part, int parts) {
  ShardLoaderOptions o;
  o.batch_size = 10;  // the global batch
  o.seed = 99;
  o.memory_limit = 1 << 20;
  o.shuffle_buffer =
      64;  // records travel between shards, and the buffer starts emitting while it fills
  o.part = {part, parts};
  return o;
}

// Rank r's rows of each global batch, put together in rank order.
std::vector<std::vector<int64_t>> joined(
    const std::vector<std::vector<std::vector<int64_t>>>& per_rank) {
  std::vector<std::vector<int64_t>> out(per_rank[0].size());
  for (const auto& rank : per_rank) {
    EXPECT_EQ(rank.size(), out.size())
        << "the ranks have different numbers of batches: their collectives would hang";
    for (size_t b = 0; b < std::min(rank.size(), out.size()); ++b)
      out[b].insert(out[b].end(), rank[b].begin(), rank[b].end());
  }
  return out;
}

TEST(BatchParts, ShardRanksTogetherSeeEachRecordOncePerEpochAsOneProcessDoes) {
  TempDir dir;
  write_id_dataset(dir.path(), 997,
                   50);  // 997 % 10 = 7 rows in the last batch: enough for 2 or 3 ranks
  ShardLoader one(dir.path(), shard_options(0, 1));
  for (int parts : {2, 3}) {
    std::vector<std::unique_ptr<ShardLoader>> ranks;
    for (int r = 0; r < parts; ++r)
      ranks.push_back(std::make_unique<ShardLoader>(dir.path(), shard_options(r, parts)));
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::vector<std::vector<std::vector<int64_t>>> per_rank;
      std::map<int64_t, int> seen_by;  // record id -> the rank whose batch held it
      for (int r = 0; r < parts; ++r) {
        EXPECT_EQ(ranks[r]->batches_per_epoch(), 100);
        per_rank.push_back(epoch_ids(*ranks[r], {epoch, 0}));
        for (const auto& batch : per_rank.back())
          for (int64_t id : batch)
            EXPECT_TRUE(seen_by.emplace(id, r).second) << "record " << id << " seen twice";
      }
      EXPECT_EQ(seen_by.size(), 997u) << parts << " ranks, epoch " << epoch;
      EXPECT_EQ(joined(per_rank), epoch_ids(one, {epoch, 0})) << parts << " ranks, epoch " << epoch;
    }
    // Resumed mid-epoch, each rank goes on with exactly its remaining batches.
    for (int r = 0; r < parts; ++r) {
      std::vector<std::vector<int64_t>> whole = epoch_ids(*ranks[r], {1, 0});
      EXPECT_EQ(epoch_ids(*ranks[r], {1, 37}),
                std::vector<std::vector<int64_t>>(whole.begin() + 37, whole.end()));
    }
  }
}

TEST(BatchParts, ALastGlobalBatchTooSmallToSplitIsDroppedByEveryShardRank) {
  TempDir dir;
  write_id_dataset(dir.path(), 991, 50);  // the last global batch holds 1 row: no row for rank 1
  ShardLoader one(dir.path(), shard_options(0, 1));
  ShardLoader rank0(dir.path(), shard_options(0, 2)), rank1(dir.path(), shard_options(1, 2));
  EXPECT_EQ(one.batches_per_epoch(), 100);
  EXPECT_EQ(rank0.batches_per_epoch(), 99);
  EXPECT_EQ(rank1.batches_per_epoch(), 99);
  std::vector<std::vector<int64_t>> single = epoch_ids(one, {0, 0});
  single.pop_back();
  EXPECT_EQ(joined({epoch_ids(rank0, {0, 0}), epoch_ids(rank1, {0, 0})}), single);
}

TEST(BatchParts, AGlobalBatchSmallerThanTheRanksIsRefused) {
  TempDir dir;
  write_id_dataset(dir.path(), 100, 50);
  ShardLoaderOptions o = shard_options(0, 3);
  o.batch_size = 2;
  try {
    ShardLoader loader(dir.path(), o);
    FAIL() << "a batch of 2 rows was split in 3 parts";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("ShardLoader: a batch of 2 rows cannot be split in 3 parts"),
        std::string::npos)
        << e.what();
  }
}

// x of a window of the tokens 0, 1, 2, ... starts at its window's start: the rows say which
// windows.
std::vector<std::vector<int64_t>> window_starts(BatchSource& loader, int64_t block) {
  loader.seek({2, 0});
  std::vector<std::vector<int64_t>> out;
  while (std::optional<Batch> b = loader.next()) {
    std::vector<int64_t> starts;
    for (int64_t r = 0; r < b->x.dim(0); ++r)
      starts.push_back(static_cast<int64_t>(b->x.data<float>()[r * block]));
    out.push_back(starts);
  }
  return out;
}

TEST(BatchParts, TextRanksDrawTheWindowsOfOneProcess) {
  std::vector<int32_t> tokens(5000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i);
  TextWindowLoader one(tokens, {16, 12, 5, nullptr, {}});
  std::vector<std::vector<std::vector<int64_t>>> per_rank;
  for (int r = 0; r < 3; ++r) {
    TextWindowLoader rank(tokens, {16, 12, 5, nullptr, {r, 3}});
    EXPECT_EQ(rank.batches_per_epoch(), one.batches_per_epoch());
    per_rank.push_back(window_starts(rank, 16));
    for (const auto& batch : per_rank.back()) EXPECT_EQ(batch.size(), 4u);
  }
  EXPECT_EQ(joined(per_rank), window_starts(one, 16));
}

TEST(BatchParts, TokenDatasetRanksDrawTheWindowsOfOneProcessFromTheFiles) {
  TempDir dir;
  const fs::path corpus = dir.path() / "corpus.txt";
  {
    std::ofstream out(corpus, std::ios::binary);
    for (int i = 0; i < 3000; ++i) out << "word" << (i * 7919 % 31) << (i % 5 ? " " : ".\n");
  }
  BpeTrainOptions bpe;
  bpe.vocab_size = 280;
  const fs::path tokenizer = dir.path() / "tokenizer.json";
  write_file_atomically(tokenizer, train_bpe(corpus.string(), bpe).tokenizer.to_json());
  PackOptions pack;
  pack.tokenizer = tokenizer.string();
  pack.shard_bytes = 2048;
  pack_dataset(corpus.string(), dir.path() / "tokens", pack);
  // Below the split's size: windows are read from the shard files.
  auto options = [](int part, int parts) {
    return TokenShardOptions{16, 8, 3, 8 << 10, "train", nullptr, {part, parts}};
  };
  TokenShardLoader one(dir.path() / "tokens", options(0, 1));
  ASSERT_FALSE(one.plan().whole_split);
  auto rows = [](TokenShardLoader& loader) {
    loader.seek({1, 0});
    std::vector<std::vector<float>> out;
    while (std::optional<Batch> b = loader.next())
      out.emplace_back(b->x.data<float>(), b->x.data<float>() + b->x.numel());
    return out;
  };
  TokenShardLoader rank0(dir.path() / "tokens", options(0, 2)),
      rank1(dir.path() / "tokens", options(1, 2));
  std::vector<std::vector<float>> a = rows(rank0), b = rows(rank1), whole = rows(one);
  ASSERT_EQ(a.size(), whole.size());
  ASSERT_EQ(b.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    std::vector<float> both = a[i];
    both.insert(both.end(), b[i].begin(), b[i].end());
    EXPECT_EQ(both, whole[i]) << "batch " << i;
  }
}

}  // namespace
}  // namespace gpuml::data
