// GPTs through the command line (issue 20): a small GPT memorises a short text, generation with
// the KV cache writes exactly what recomputing the window writes (also past the context window,
// where both keep its last half), and bad prompts, a non-GPT run and conflicting flags are
// refused with their messages.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <regex>

#include "e2e_support.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::q;
using testing::read_text;
using testing::run_gpuml;
using testing::TempDir;

// A 1-block GPT of context 16 in the model JSON (nn/transformer.h's layout).
std::string tiny_gpt(int64_t vocab) {
  return fmt::format(
      R"({{"input_shape": [16], "layers": [
  {{"type": "Embedding", "name": "wte", "num_embeddings": {0}, "embedding_dim": 32, "init_std": 0.02}},
  {{"type": "PositionEmbedding", "name": "wpe", "num_embeddings": 16, "embedding_dim": 32}},
  {{"type": "Sequential", "name": "blocks", "layers": [{{"type": "TransformerBlock", "n_embd": 32, "n_head": 4}}]}},
  {{"type": "LayerNorm", "name": "ln_f", "normalized_shape": 32}},
  {{"type": "Linear", "name": "head", "in_features": 32, "out_features": {0}, "bias": false, "tied_to": "wte.weight"}}]}})",
      vocab);
}

class GptCli : public ::testing::Test {
 protected:
  // Trains the tiny GPT on 200 lines of the alphabet (every character's successor is fixed).
  void SetUp() override {
    std::ofstream text(dir_.path() / "abc.txt");
    for (int i = 0; i < 200; ++i) text << "abcdefghijklmnopqrstuvwxyz\n";
    text.close();
    std::ofstream(dir_.path() / "gpt.json") << tiny_gpt(27);
  }
  TempDir dir_;
  fs::path run_ = dir_.path() / "run";
};

TEST_F(GptCli, MemorisesAShortTextAndGeneratesItWithAndWithoutTheCache) {
  auto r = run_gpuml(fmt::format("train --data {} --model {} --steps 300 --batch-size 16 --optimizer adamw --lr 3e-3 "
                                 "--device cpu --threads 1 --out {} --quiet",
                                 q(dir_.path() / "abc.txt"), q(dir_.path() / "gpt.json"), q(run_)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // metrics.csv's last row: epoch, step, then the train loss of the epoch that ended at step 300.
  std::string metrics = read_text(run_ / "metrics.csv");
  std::smatch m;
  std::string last = metrics.substr(metrics.rfind('\n', metrics.size() - 2) + 1);
  ASSERT_TRUE(std::regex_search(last, m, std::regex(R"(^\d+,300,([0-9.e-]+),)"))) << metrics;
  EXPECT_LT(std::stod(m[1]), 0.05) << metrics;

  // 40 new tokens from a 10-character prompt pass the context of 16: the window slides.
  auto cached = run_gpuml(fmt::format("generate --checkpoint {} --prompt ghijklmnop --max-new-tokens 40 --greedy", q(run_)));
  auto full = run_gpuml(
      fmt::format("generate --checkpoint {} --prompt ghijklmnop --max-new-tokens 40 --greedy --no-cache", q(run_)));
  ASSERT_EQ(cached.exit_code, 0) << cached.output;
  ASSERT_EQ(full.exit_code, 0) << full.output;
  EXPECT_EQ(cached.output, full.output);
  EXPECT_EQ(cached.output.substr(0, 18), "qrstuvwxyz\nabcdefg") << cached.output;

  // Sampling is seeded: the same seed, the same text.
  auto s1 = run_gpuml(fmt::format("generate --checkpoint {} --prompt a --max-new-tokens 30 --seed 7 --temperature 2", q(run_)));
  auto s2 = run_gpuml(fmt::format("generate --checkpoint {} --prompt a --max-new-tokens 30 --seed 7 --temperature 2", q(run_)));
  ASSERT_EQ(s1.exit_code, 0) << s1.output;
  EXPECT_EQ(s1.output, s2.output);

  auto bad = run_gpuml(fmt::format("generate --checkpoint {} --prompt 'abcD'", q(run_)));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("character 'D' (U+0044) at position 4 is not in the model's vocabulary of 27"),
            std::string::npos)
      << bad.output;
  auto cut = run_gpuml(fmt::format("generate --checkpoint {} --prompt abcdefghijklmnopqrstu --max-new-tokens 1", q(run_)));
  EXPECT_EQ(cut.exit_code, 0) << cut.output;
  EXPECT_NE(cut.output.find("note: the prompt's 21 characters are more than the model's context of 16: it keeps "
                            "the last 16"),
            std::string::npos)
      << cut.output;
}

TEST_F(GptCli, PresetTrainsWithThePeersRecipeUnlessAFlagSaysOtherwise) {
  auto r = run_gpuml(fmt::format("train --data {} --model cpu-small --lr 5e-4 --max-steps 1 --device cpu --out {}",
                                 q(dir_.path() / "abc.txt"), q(run_)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("note: the cpu-small preset trains with torch_gpt.py's recipe: --batch-size 12 --steps 2000 "
                          "--optimizer adamw --betas 0.9,0.99 --weight-decay 0.1 --weight-decay-params matrices "
                          "--clip-grad-norm 1 --schedule cosine:0.0001,warmup:100"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("adamw(lr=0.0005, betas=(0.9, 0.99)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2000 steps"), std::string::npos) << r.output;
  // The recipe is saved: --resume keeps it.
  std::string config = read_text(run_ / "config.json");
  EXPECT_NE(config.find("\"steps\": 2000"), std::string::npos) << config;
  EXPECT_NE(config.find("\"weight_decay_params\": \"matrices\""), std::string::npos) << config;
}

TEST_F(GptCli, RefusesWhatItCannotRun) {
  auto both = run_gpuml(fmt::format("train --data {} --model {} --steps 10 --epochs 2 --out {}",
                                    q(dir_.path() / "abc.txt"), q(dir_.path() / "gpt.json"), q(run_)));
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_NE(both.output.find("--steps and --epochs exclude each other"), std::string::npos) << both.output;

  // A bigram model trains on text, but generate needs the blocks' layout for its cache.
  std::ofstream(dir_.path() / "bigram.json")
      << R"({"input_shape": [16], "layers": [{"type": "Embedding", "num_embeddings": 27, "embedding_dim": 8}, )"
         R"({"type": "Linear", "in_features": 8, "out_features": 27}]})";
  auto bigram = run_gpuml(fmt::format("train --data {} --model {} --steps 2 --device cpu --out {} --quiet",
                                      q(dir_.path() / "abc.txt"), q(dir_.path() / "bigram.json"), q(run_)));
  ASSERT_EQ(bigram.exit_code, 0) << bigram.output;
  auto gen = run_gpuml(fmt::format("generate --checkpoint {} --prompt abc", q(run_)));
  EXPECT_EQ(gen.exit_code, 1) << gen.output;
  EXPECT_NE(gen.output.find("generate needs a GPT laid out as the presets are"), std::string::npos) << gen.output;

  // The presets take their vocabulary from text; without text they say so.
  auto preset = run_gpuml(fmt::format("train --model cpu-small --data {} --out {}", q(dir_.path() / "none.csv"),
                                      q(dir_.path() / "run2")));
  EXPECT_EQ(preset.exit_code, 1) << preset.output;
  EXPECT_NE(preset.output.find("takes its vocabulary from the data"), std::string::npos) << preset.output;
}

// torch_gpt.py's timing data: random tokens, from --data random-tokens:VOCAB[:COUNT] (gpt2-124m's
// default). Nothing to learn: the loss stays near ln(VOCAB); eval rebuilds the same validation
// tokens from the run's seed; there are no characters to generate.
TEST_F(GptCli, TrainsOnRandomTokensAndEvaluatesTheSameSplit) {
  std::ofstream(dir_.path() / "gpt40.json") << tiny_gpt(40);
  auto r = run_gpuml(fmt::format("train --data random-tokens:40:6000 --model {} --steps 30 --batch-size 8 --seed 5 "
                                 "--optimizer adamw --device cpu --threads 1 --out {}",
                                 q(dir_.path() / "gpt40.json"), q(run_)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("random tokens random-tokens:40:6000: 6000 tokens, 40 distinct; 5400 train"),
            std::string::npos) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(val loss ([0-9.]+))"))) << r.output;
  const double val_loss = std::stod(m[1]);
  EXPECT_NEAR(val_loss, std::log(40.0), 0.15) << r.output;
  auto eval = run_gpuml(fmt::format("eval --checkpoint {} --device cpu", q(run_)));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("the last 10% of the tokens"), std::string::npos) << eval.output;
  EXPECT_NE(eval.output.find(fmt::format("{:.4f}", val_loss)), std::string::npos) << eval.output << r.output;
  auto gen = run_gpuml(fmt::format("generate --checkpoint {} --prompt abc", q(run_)));
  EXPECT_EQ(gen.exit_code, 1) << gen.output;
  EXPECT_NE(gen.output.find("has no vocabulary of characters and no tokenizer (trained on random-tokens:40:6000)"), std::string::npos)
      << gen.output;
  // predict: (N, T) token ids in, (N, T, V) per-token probabilities or logits out, as .npy only.
  std::ofstream ids(dir_.path() / "ids.csv");
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < 16; ++j) ids << (r * 16 + j) % 40 << (j == 15 ? "\n" : ",");
  ids.close();
  auto pred = run_gpuml(fmt::format("predict --checkpoint {} --input {} --output {} --logits --device cpu", q(run_),
                                    q(dir_.path() / "ids.csv"), q(dir_.path() / "logits.npy")));
  ASSERT_EQ(pred.exit_code, 0) << pred.output;
  EXPECT_NE(read_text(dir_.path() / "logits.npy").find("'shape': (3, 16, 40)"), std::string::npos);
  EXPECT_NE(read_text(dir_.path() / "logits.labels.npy").find("'shape': (3, 16)"), std::string::npos);
  auto csv = run_gpuml(fmt::format("predict --checkpoint {} --input {} --output {} --device cpu", q(run_),
                                   q(dir_.path() / "ids.csv"), q(dir_.path() / "p.csv")));
  EXPECT_EQ(csv.exit_code, 1) << csv.output;
  EXPECT_NE(csv.output.find("a language model predicts (N, T, V) per token; write them to an .npy file"),
            std::string::npos) << csv.output;
  std::ofstream(dir_.path() / "far.csv") << "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,40\n";
  auto far = run_gpuml(fmt::format("predict --checkpoint {} --input {} --output {} --device cpu", q(run_),
                                   q(dir_.path() / "far.csv"), q(dir_.path() / "p.npy")));
  EXPECT_EQ(far.exit_code, 1) << far.output;
  EXPECT_NE(far.output.find("value 40 at row 0, position 15 is not a token id of the model's vocabulary [0, 40)"),
            std::string::npos) << far.output;

  auto bad = run_gpuml(fmt::format("train --data random-tokens:40x --model {} --steps 1 --out {}",
                                   q(dir_.path() / "gpt40.json"), q(dir_.path() / "run2")));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--data random-tokens:40x: VOCAB '40x' is not a positive whole number"), std::string::npos)
      << bad.output;
}

}  // namespace
}  // namespace gpuml
