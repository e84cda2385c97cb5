// Text as tokens through the binary: `gpuml data tokenize`, `data pack --tokenizer`, `train` on
// the token shards at a memory limit below their size (resumed mid-run), `eval`, and `generate`
// decoding through the run's tokenizer; and the bad inputs: a malformed tokenizer file, a corpus
// that is not UTF-8, a shard holding a token id beyond the vocabulary.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>

#include "e2e_support.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::q;
using testing::run_gpuml;
using testing::TempDir;

class TokenE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream out(corpus(), std::ios::binary);
    for (int i = 0; i < 600; ++i)
      out << "ROMEO: " << (i % 7) << " roses, " << (i * 3 % 11) << " thorns; what's in a name?\n"
          << "JULIET: caf\xC3\xA9 \xE2\x82\xAC" << i % 5
          << " \xE2\x80\x94 the nightingale, not the lark.\n\n";
  }
  fs::path corpus() const { return dir_.path() / "play.txt"; }
  fs::path tokenizer() const { return dir_.path() / "tokenizer.json"; }
  fs::path shards() const { return dir_.path() / "tokens"; }
  TempDir dir_;
};

// A small GPT (the preset layout, nn::gpt_model_json) over the tokenizer's 320 tokens.
std::string tiny_gpt(int vocab) {
  return fmt::format(
      R"({{"input_shape": [16], "layers": [
 {{"type": "Embedding", "name": "wte", "num_embeddings": {0}, "embedding_dim": 32, "init_std": 0.02}},
 {{"type": "PositionEmbedding", "name": "wpe", "num_embeddings": 16, "embedding_dim": 32}},
 {{"type": "Sequential", "name": "blocks", "layers": [{{"type": "TransformerBlock", "n_embd": 32, "n_head": 2, "n_layer": 1}}]}},
 {{"type": "LayerNorm", "name": "ln_f", "normalized_shape": 32}},
 {{"type": "Linear", "name": "head", "in_features": 32, "out_features": {0}, "bias": false, "tied_to": "wte.weight"}}]}})",
      vocab);
}

TEST_F(TokenE2E, TokenizePackTrainResumeEvalGenerate) {
  auto t = run_gpuml("data tokenize " + q(corpus()) + " " + q(tokenizer()) +
                     " --vocab-size 320 --quiet");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("a byte-level BPE of 320 tokens (64 merges)"), std::string::npos)
      << t.output;
  auto p = run_gpuml("data pack " + q(corpus()) + " " + q(shards()) + " --tokenizer " +
                     q(tokenizer()) + " --shard-size 2K --quiet");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("of a 320-token vocabulary, u16"), std::string::npos) << p.output;
  auto v = run_gpuml("data verify --quiet " + q(shards()));
  ASSERT_EQ(v.exit_code, 0) << v.output;

  const fs::path model = dir_.path() / "gpt.json";
  std::ofstream(model) << tiny_gpt(320);
  const fs::path run = dir_.path() / "run";
  // 8K: below the train split's size (windows read from the shard files); stopped after 20
  // steps, resumed.
  const std::string train =
      "train --data " + q(shards()) + " --model " + q(model) +
      " --steps 40 --batch-size 8 --lr 3e-3 --optimizer adamw --data-memory-limit 8K "
      "--threads 1 --out " +
      q(run);
  auto first = run_gpuml(train + " --max-steps 20");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("task: language-model (auto: token dataset)"), std::string::npos)
      << first.output;
  EXPECT_NE(first.output.find("windows read from its"), std::string::npos) << first.output;
  auto resumed = run_gpuml("train --resume " + q(run) + " --threads 1");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("at epoch 1, step 20"), std::string::npos) << resumed.output;

  auto e = run_gpuml("eval --checkpoint " + q(run));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NE(e.output.find("(validation split of the token dataset): loss"), std::string::npos)
      << e.output;
  // A (briefly) trained model continues the prompt with pieces of the corpus, decoded through the
  // tokenizer into whole UTF-8 characters.
  auto g = run_gpuml("generate --checkpoint " + q(run) +
                     " --prompt 'ROMEO:' --max-new-tokens 40 --greedy");
  ASSERT_EQ(g.exit_code, 0) << g.output;
  bool corpus_word = false;
  for (const char* word : {"the", "roses", "thorns", "JULIET", "name", "caf\xC3\xA9", "lark"})
    corpus_word = corpus_word || g.output.find(word) != std::string::npos;
  EXPECT_TRUE(corpus_word) << g.output;
  auto u = run_gpuml("generate --checkpoint " + q(run) +
                     " --prompt 'caf\xC3\xA9 \xE2\x82\xAC' --max-new-tokens 5");
  ASSERT_EQ(u.exit_code, 0) << u.output;
}

TEST_F(TokenE2E, BadInputsAreClearErrors) {
  // A corpus that is not UTF-8: refused with the offset, the fallback named; accepted with it.
  const fs::path latin1 = dir_.path() / "latin1.txt";
  std::ofstream(latin1, std::ios::binary)
      << std::string(200, 'a') << " caf\xE9 " << std::string(200, 'b') << "\n";
  auto bad =
      run_gpuml("data tokenize " + q(latin1) + " " + q(tokenizer()) + " --vocab-size 260 --quiet");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("byte 204 (0xe9) is not UTF-8"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("--allow-invalid-utf8"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(tokenizer()));
  auto fallback = run_gpuml("data tokenize " + q(latin1) + " " + q(tokenizer()) +
                            " --vocab-size 260 --quiet --allow-invalid-utf8");
  ASSERT_EQ(fallback.exit_code, 0) << fallback.output;
  EXPECT_NE(fallback.output.find("1 bytes that are not UTF-8 were kept as bytes"),
            std::string::npos)
      << fallback.output;

  // A malformed tokenizer file: pack names it and writes nothing.
  const fs::path broken = dir_.path() / "broken.json";
  std::ofstream(broken)
      << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})";
  auto b = run_gpuml("data pack " + q(corpus()) + " " + q(shards()) + " --tokenizer " + q(broken) +
                     " --quiet");
  EXPECT_EQ(b.exit_code, 1) << b.output;
  EXPECT_NE(b.output.find("broken.json: model.vocab has 1 tokens; a byte-level vocabulary has 256"),
            std::string::npos)
      << b.output;
  EXPECT_FALSE(fs::exists(shards() / "manifest.json"));

  // A shard with an id beyond the vocabulary (here: a manifest that claims a smaller one).
  auto t = run_gpuml("data tokenize " + q(corpus()) + " " + q(tokenizer()) +
                     " --vocab-size 320 --quiet");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto p = run_gpuml("data pack " + q(corpus()) + " " + q(shards()) + " --tokenizer " +
                     q(tokenizer()) + " --quiet");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  std::string manifest = testing::read_text(shards() / "manifest.json");
  manifest.replace(manifest.find("\"vocab_size\": 320"), 17, "\"vocab_size\": 300");
  std::ofstream(shards() / "manifest.json") << manifest;
  const fs::path model = dir_.path() / "gpt.json";
  std::ofstream(model) << tiny_gpt(320);
  auto train =
      run_gpuml("train --data " + q(shards()) + " --model " + q(model) +
                " --steps 2 --batch-size 4 --threads 1 --quiet --out " + q(dir_.path() / "run"));
  EXPECT_EQ(train.exit_code, 1) << train.output;
  EXPECT_NE(train.output.find("is beyond the vocabulary of 300 tokens"), std::string::npos)
      << train.output;
  EXPECT_NE(train.output.find(".shard"), std::string::npos) << train.output;
  auto v = run_gpuml("data verify --quiet " + q(shards()));
  EXPECT_EQ(v.exit_code, 1) << v.output;
}

}  // namespace
}  // namespace gpuml
