// Token datasets (data/pack.h with a tokenizer, data/token_shards.h): packing a corpus stores
// exactly the tokenizer's encoding, split 90/10 by bytes; the window loader draws windows of the
// stored tokens, seeded and resumable, within a memory limit below the split's size; hostile
// manifests and token ids beyond the vocabulary are refused naming the problem.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_train.h"
#include "data/pack.h"
#include "data/shard_reader.h"
#include "data/token_shards.h"
#include "io_temp_dir.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;

class TokenShards : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(11);
    const std::vector<std::string> words = {"the",
                                            "king",
                                            "queen",
                                            "'s",
                                            "crown",
                                            "caf\xC3\xA9",
                                            "\xE2\x82\xAC"
                                            "5",
                                            "42",
                                            "!",
                                            "?",
                                            "\n",
                                            "  ",
                                            "thou",
                                            "art",
                                            "dost"};
    for (int i = 0; i < 12000; ++i) text_ += words[rng() % words.size()] + (rng() % 3 ? " " : "");
    corpus_ = (dir_.path() / "corpus.txt").string();
    std::ofstream(corpus_, std::ios::binary) << text_;
    BpeTrainOptions o;
    o.vocab_size = 300;
    tokenizer_ = (dir_.path() / "tokenizer.json").string();
    write_file_atomically(tokenizer_, train_bpe(corpus_, o).tokenizer.to_json());
    PackOptions p;
    p.tokenizer = tokenizer_;
    p.shard_bytes = 4096;  // 2,048 tokens a shard
    pack_dataset(corpus_, packed(), p);
  }
  fs::path packed() const { return dir_.path() / "tokens"; }
  void edit_manifest(const std::string& from, const std::string& to) {
    std::string m = read_file_bytes(packed() / "manifest.json");
    const size_t at = m.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    write_file_atomically(packed() / "manifest.json", m.replace(at, from.size(), to));
  }
  testing::TempDir dir_;
  std::string text_, corpus_, tokenizer_;
};

TEST_F(TokenShards, PackStoresTheTokenizersEncodingSplitNinetyTen) {
  const BpeTokenizer tok = BpeTokenizer::read(tokenizer_);
  std::vector<int32_t> stored = read_token_split(packed(), "train");
  const std::vector<int32_t> validation = read_token_split(packed(), "validation");
  const size_t train_tokens = stored.size();
  stored.insert(stored.end(), validation.begin(), validation.end());
  EXPECT_EQ(stored, tok.encode(text_));
  EXPECT_EQ(
      tok.decode(std::vector<int32_t>(stored.begin(),
                                      stored.begin() + static_cast<std::ptrdiff_t>(train_tokens)))
          .size(),
      tok.decode(stored).size() - tok.decode(validation).size());
  EXPECT_NEAR(
      static_cast<double>(tok.decode(validation).size()) / static_cast<double>(text_.size()), 0.1,
      0.01);
  const ShardManifest m = read_shard_manifest(packed());
  EXPECT_EQ(m.vocab_size, 300);
  EXPECT_EQ(m.tokenizer, "tokenizer.json");
  EXPECT_EQ(m.field("tokens").dtype_text(), "u16");
  EXPECT_EQ(read_file_bytes(packed() / "tokenizer.json"), read_file_bytes(tokenizer_));
  EXPECT_GT(m.split("train").shards.size(), 3u);
  EXPECT_TRUE(is_token_dataset(packed()));
  EXPECT_TRUE(verify_shard_dataset(packed()).empty());
  EXPECT_NE(
      describe_shard_dataset(packed()).find("tokens: vocabulary of 300, tokenizer tokenizer.json"),
      std::string::npos);
}

std::vector<float> xs(const Batch& b) {
  return {b.x.data<float>(), b.x.data<float>() + b.x.numel()};
}

TEST_F(TokenShards, WindowsAreTheTokensSeededAndResumableWithinTheLimit) {
  const std::vector<int32_t> train = read_token_split(packed(), "train");
  TokenShardOptions o;
  o.block = 16;
  o.batch = 4;
  o.seed = 3;
  o.memory_limit = 2 * 4096 + 2 * 4 * 16 * 12;  // below the split's size: windows read from files
  TokenShardLoader loader(packed(), o);
  EXPECT_FALSE(loader.plan().whole_split);
  EXPECT_LE(loader.plan().total(), o.memory_limit);
  EXPECT_EQ(loader.batches_per_epoch(), static_cast<int64_t>(train.size()) / (4 * 16));
  std::vector<std::vector<float>> epoch1;
  for (int64_t e = 0; e < 2; ++e) {
    loader.start_epoch(e);
    while (std::optional<Batch> b = loader.next()) {
      // Each row is a run of the split's tokens, and its targets are the run shifted by one.
      for (int64_t r = 0; r < 4; ++r) {
        const float* x = b->x.data<float>() + r * 16;
        const int64_t* y = b->y.data<int64_t>() + r * 16;
        for (int64_t j = 0; j + 1 < 16; ++j) ASSERT_EQ(static_cast<int64_t>(x[j + 1]), y[j]);
        auto at = std::search(train.begin(), train.end(), y, y + 16);
        ASSERT_NE(at, train.end()) << "a window that is not in the split";
        ASSERT_EQ(static_cast<int64_t>(x[0]), *(at - 1));
      }
      if (e == 1) epoch1.push_back(xs(*b));
    }
  }
  // Resuming mid-epoch (another loader, as after a restart) gives the same batches.
  TokenShardLoader again(packed(), o);
  again.seek({1, 5});
  for (size_t b = 5; b < epoch1.size(); ++b) ASSERT_EQ(xs(*again.next()), epoch1[b]) << b;
  EXPECT_FALSE(again.next().has_value());
  // With the whole split in memory: exactly the batches streamed below the split's size.
  o.memory_limit = 1 << 20;
  TokenShardLoader whole(packed(), o);
  EXPECT_TRUE(whole.plan().whole_split);
  EXPECT_EQ(whole.batches_per_epoch(), loader.batches_per_epoch());
  whole.seek({1, 0});
  for (size_t b = 0; b < epoch1.size(); ++b) ASSERT_EQ(xs(*whole.next()), epoch1[b]) << b;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "(accepted)";
}

TEST_F(TokenShards, TokenIdsBeyondTheVocabularyAreRefusedNamingTheShard) {
  edit_manifest("\"vocab_size\": 300", "\"vocab_size\": 260");
  TokenShardOptions o;
  o.block = 16;
  o.batch = 4;
  for (uint64_t limit :
       {uint64_t{0}, uint64_t{2 * 4096 + 2 * 4 * 16 * 12}}) {  // whole; windows read
    o.memory_limit = limit;
    TokenShardLoader loader(packed(), o);
    EXPECT_EQ(loader.plan().whole_split, limit == 0);
    loader.start_epoch(0);
    const std::string message = error_of([&] { loader.next(); });
    EXPECT_NE(message.find("train-0000"), std::string::npos) << message;
    EXPECT_NE(message.find("is beyond the vocabulary of 260 tokens"), std::string::npos) << message;
  }
  EXPECT_NE(
      error_of([&] { read_token_split(packed(), "validation"); }).find("beyond the vocabulary"),
      std::string::npos);
  const std::vector<ShardProblem> problems = verify_shard_dataset(packed());
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].message.find("beyond the vocabulary"), std::string::npos)
      << problems[0].message;
}

TEST_F(TokenShards, HostileManifestsAndLimitsAreRefused) {
  const std::string manifest = read_file_bytes(packed() / "manifest.json");
  const auto expect = [&](const std::string& from, const std::string& to, const std::string& part) {
    std::string m = manifest;
    const size_t at = m.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    const std::string message =
        error_of([&] { parse_shard_manifest(m.replace(at, from.size(), to), "manifest.json"); });
    EXPECT_NE(message.find(part), std::string::npos) << "expected '" << part << "' in: " << message;
  };
  expect("\"dtype\": \"u16\"", "\"dtype\": \"f32\"",
         "the token field holds u16 or u32 token ids, not f32");
  expect("\"name\": \"tokens\"", "\"name\": \"x\"", "dtype u16 is for the token field");
  expect("\"vocab_size\": 300", "\"vocab_size\": 70000", "needs \"vocab_size\" in [1, 65536]");
  expect("\"vocab_size\": 300", "\"vocab_size\": 0", "needs \"vocab_size\"");
  expect("\"tokenizer\": \"tokenizer.json\"", "\"tokenizer\": \"../tokenizer.json\"",
         "must be a plain file name");
  expect("\"shape\": []", "\"shape\": [2]", "records are one token each");
  TokenShardOptions o;
  o.memory_limit = 1000;  // less than one shard
  EXPECT_NE(error_of([&] { TokenShardLoader(packed(), o); }).find("too small for one shard"),
            std::string::npos);
  o.memory_limit = 0;
  o.block = 5000;  // longer than a shard
  EXPECT_NE(error_of([&] {
              TokenShardLoader(packed(), o);
            }).find("no shard of split 'train' holds a window"),
            std::string::npos);
  // A malformed tokenizer: pack refuses it naming the file, before writing anything.
  write_file_atomically(dir_.path() / "bad.json", "{\"model\": {\"type\": \"BPE\"");
  PackOptions p;
  p.tokenizer = (dir_.path() / "bad.json").string();
  EXPECT_NE(error_of([&] {
              pack_dataset(corpus_, dir_.path() / "out", p);
            }).find("bad.json: not valid JSON"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.path() / "out" / "manifest.json"));
}

}  // namespace
}  // namespace gpuml::data
