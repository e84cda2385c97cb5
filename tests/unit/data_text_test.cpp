// Text for character language models (data/text.h): the peer's vocabulary and 90/10 split, UTF-8
// decoded by code point, hostile files refused naming the problem, and seeded random windows that
// are the text itself (targets shifted by one) and rebuild exactly on seek.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>

#include "core/error.h"
#include "data/text.h"
#include "io_temp_dir.h"

namespace gpuml::data {
namespace {

class DataTextTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_.path() / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string error_of(const std::string& path, int64_t block) {
    try {
      read_text_corpus(path, block);
    } catch (const Error& e) {
      return e.message();
    }
    return "(accepted)";
  }
  testing::TempDir dir_;
};

TEST_F(DataTextTest, VocabularyIsTheSortedCodePointsAndTheSplitIsNinetyTen) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "caf\xC3\xA9 \xE2\x82\xAC";  // "café €": é is 2 bytes, € is 3
  TextCorpus c = read_text_corpus(write("t.txt", text), 8);
  EXPECT_EQ(c.vocabulary, (std::vector<std::string>{" ", "a", "c", "f", "\xC3\xA9", "\xE2\x82\xAC"}));
  EXPECT_EQ(c.characters, 40 * 6);
  EXPECT_EQ(static_cast<int64_t>(c.train.size()), static_cast<int64_t>(0.9 * 240));
  EXPECT_EQ(c.train.size() + c.validation.size(), 240u);
  EXPECT_EQ((std::vector<int32_t>(c.train.begin(), c.train.begin() + 6)), (std::vector<int32_t>{2, 1, 3, 4, 0, 5}));
}

TEST_F(DataTextTest, HostileFilesAreRefusedNamingTheProblem) {
  EXPECT_NE(error_of(write("empty.txt", ""), 4).find("empty"), std::string::npos);
  EXPECT_NE(error_of(write("bin.txt", std::string("abc\0def", 7) + std::string(100, 'x')), 4).find("byte 3 is a NUL"),
            std::string::npos);
  EXPECT_NE(error_of(write("latin1.txt", std::string(50, 'a') + "caf\xE9" + std::string(50, 'b')), 4)
                .find("byte 53 (0xe9) is not UTF-8"),
            std::string::npos);
  EXPECT_NE(error_of(write("overlong.txt", std::string(60, 'a') + "\xC0\xAF"), 4).find("byte 60"), std::string::npos);
  EXPECT_NE(error_of(write("cut.txt", std::string(60, 'a') + "\xE2\x82"), 4).find("byte 60"), std::string::npos);
  EXPECT_NE(error_of(write("short.txt", std::string(30, 'a')), 8).find("too few"), std::string::npos);
  EXPECT_NE(error_of((dir_.path() / "missing.txt").string(), 4).find("no such file"), std::string::npos);
}

std::vector<float> rows_of(const Batch& b) { return std::vector<float>(b.x.data<float>(), b.x.data<float>() + b.x.numel()); }

TEST_F(DataTextTest, WindowsAreTheTextShiftedByOneAndRebuildOnSeek) {
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  std::vector<int32_t> tokens(500);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i);  // the id is the position
  TextWindowLoader loader(tokens, {16, 4, seed, nullptr});
  EXPECT_EQ(loader.batches_per_epoch(), 500 / 64);
  std::vector<std::vector<float>> epoch1;
  std::set<int64_t> starts;
  loader.start_epoch(1);
  while (std::optional<Batch> b = loader.next()) {
    ASSERT_EQ(b->x.shape(), (Shape{4, 16}));
    ASSERT_EQ(b->y.shape(), (Shape{4, 16}));
    for (int64_t r = 0; r < 4; ++r) {
      const float start = b->x.data<float>()[r * 16];
      EXPECT_LT(start, 500 - 16 - 1) << "seed " << seed;  // the peer's range of starts
      starts.insert(static_cast<int64_t>(start));
      for (int64_t j = 0; j < 16; ++j) {
        EXPECT_EQ(b->x.data<float>()[r * 16 + j], start + static_cast<float>(j));
        EXPECT_EQ(b->y.data<int64_t>()[r * 16 + j], static_cast<int64_t>(start) + j + 1);
      }
    }
    epoch1.push_back(rows_of(*b));
  }
  EXPECT_GT(starts.size(), 20u) << "windows start at random places (seed " << seed << ")";
  loader.seek({1, 3});
  std::optional<Batch> again = loader.next();
  ASSERT_TRUE(again);
  EXPECT_EQ(rows_of(*again), epoch1[3]);
  loader.start_epoch(2);
  std::optional<Batch> other = loader.next();
  ASSERT_TRUE(other);
  EXPECT_NE(rows_of(*other), epoch1[0]) << "epochs draw other windows (seed " << seed << ")";
}

TEST_F(DataTextTest, ValidationWindowsAreConsecutive) {
  std::vector<int32_t> tokens(35);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i);
  InMemoryDataset w = text_windows(tokens, 8);
  ASSERT_EQ(w.size(), 4);  // (35 - 1) / 8
  EXPECT_EQ(w.features().to_doubles()[8], 8);
  EXPECT_EQ(w.labels().to_doubles()[31], 32);
  EXPECT_EQ(text_windows(tokens, 8, 2).size(), 2);
}

// The peer's gpt2-124m timing data: uniform ids in [0, VOCAB), the same for a seed, 90/10 split.
TEST_F(DataTextTest, RandomTokensAreSeededUniformAndSplitNinetyTen) {
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  TextCorpus c = random_token_corpus("random-tokens:50:20000", 16, seed);
  EXPECT_EQ(c.vocab, 50);
  EXPECT_TRUE(c.vocabulary.empty());
  ASSERT_EQ(c.train.size(), 18000u);
  ASSERT_EQ(c.validation.size(), 2000u);
  std::vector<int64_t> counts(50);
  for (int32_t t : c.train) {
    ASSERT_TRUE(t >= 0 && t < 50) << t;
    ++counts[static_cast<size_t>(t)];
  }
  for (int64_t n : counts) EXPECT_TRUE(n > 250 && n < 470) << n << " of 18000 (seed " << seed << ")";  // 360 +- 5.8 sd
  EXPECT_EQ(random_token_corpus("random-tokens:50:20000", 16, seed).validation, c.validation);
  EXPECT_NE(random_token_corpus("random-tokens:50:20000", 16, seed + 1).train, c.train);
  EXPECT_EQ(random_token_corpus("random-tokens:50304", 1024, seed).characters, 2'000'000);  // the peer's count
  EXPECT_TRUE(is_random_tokens("random-tokens:7"));
  EXPECT_FALSE(is_random_tokens("tokens.txt"));
  for (const char* bad : {"random-tokens:", "random-tokens:x", "random-tokens:1", "random-tokens:10:-5",
                          "random-tokens:10:20x", "random-tokens:99999999999"}) {
    std::string message = "(accepted)";
    try {
      random_token_corpus(bad, 4, seed);
    } catch (const Error& e) {
      message = e.message();
    }
    EXPECT_NE(message.find(bad), std::string::npos) << bad << ": " << message;
  }
  std::string message;
  try {
    random_token_corpus("random-tokens:10:30", 8, seed);
  } catch (const Error& e) {
    message = e.message();
  }
  EXPECT_NE(message.find("30 tokens are too few"), std::string::npos) << message;
}

}  // namespace
}  // namespace gpuml::data
