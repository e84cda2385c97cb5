// The byte-level BPE tokenizer (data/bpe.h, data/bpe_train.h, data/pretokenize.h): GPT-2's
// pre-tokenizer cuts text as the `tokenizers` library does (the expected pieces were printed by
// tokenizers 0.23's ByteLevel pre-tokenizer), chunked streaming cuts the same pieces, training
// is deterministic and encoding round-trips any UTF-8 and any bytes, the JSON round-trips, and
// hostile tokenizer files are refused naming the problem.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_train.h"
#include "data/pretokenize.h"
#include "io_temp_dir.h"

namespace gpuml::data {
namespace {

std::vector<std::string> pieces_of(std::string_view text) {
  std::vector<std::string> out;
  split_pretokens(text, true, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

TEST(BpePretokenize, CutsAsTheTokenizersLibrary) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces_of("Hello  world!"), (V{"Hello", " ", " world", "!"}));
  EXPECT_EQ(pieces_of("it's 'S 'sun"), (V{"it", "'s", " '", "S", " '", "sun"}));
  EXPECT_EQ(pieces_of("a   \nb"), (V{"a", "   ", "\n", "b"}));
  EXPECT_EQ(pieces_of("a\t\tb"), (V{"a", "\t", "\t", "b"}));
  EXPECT_EQ(pieces_of("a\x1c\x1c"
                      "b"),
            (V{"a", "\x1c\x1c", "b"}));  // U+001C is "other" there
  EXPECT_EQ(pieces_of("a\xC2\xA0\xC2\xA0"
                      "b"),
            (V{"a", "\xC2\xA0", "\xC2\xA0", "b"}));  // NBSP is a space
  EXPECT_EQ(pieces_of("x1\xC2\xB2"
                      "3 \xC2\xBD"),
            (V{"x",
               "1\xC2\xB2"
               "3",
               " \xC2\xBD"}));  // superscripts are numbers
  EXPECT_EQ(pieces_of("a\xE2\x80\x8B\xE2\x80\x8B"
                      "b"),
            (V{"a", "\xE2\x80\x8B\xE2\x80\x8B", "b"}));  // U+200B: other
  EXPECT_EQ(pieces_of(" "), (V{" "}));
  EXPECT_EQ(pieces_of("we're 've'll"), (V{"we", "'re", " '", "ve", "'ll"}));
  // Bytes that are not UTF-8 are characters of the class "other" (the byte-level fallback).
  EXPECT_EQ(pieces_of("ab\xFF\xFE cd"), (V{"ab", "\xFF\xFE", " cd"}));
}

TEST(BpePretokenize, Utf8LossyReplacesEachBadByte) {
  EXPECT_EQ(utf8_lossy("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(utf8_lossy("a\xC3"
                       "b\xFF"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

std::string random_text(std::mt19937& rng, size_t n) {
  // Letters, digits, spaces, newlines, apostrophes and contractions, punctuation, 2-4 byte UTF-8.
  static const std::vector<std::string> parts = {"a",
                                                 "Z",
                                                 "q",
                                                 "7",
                                                 " ",
                                                 " ",
                                                 "  ",
                                                 "\n",
                                                 "\t",
                                                 "'",
                                                 "'s",
                                                 "'re",
                                                 "'ll",
                                                 ",",
                                                 "!?",
                                                 "\xC3\xA9",
                                                 "\xE2\x82\xAC",
                                                 "\xF0\x9F\x98\x80",
                                                 "\xC2\xA0",
                                                 "\xE4\xB8\xAD",
                                                 "\xD9\xA3"};
  std::string out;
  while (out.size() < n) out += parts[rng() % parts.size()];
  return out;
}

TEST(BpePretokenize, ChunkedStreamingCutsTheSamePieces) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const std::string text = random_text(rng, 400);
    const std::vector<std::string> whole = pieces_of(text);
    std::vector<std::string> streamed;
    std::string carry;
    for (size_t at = 0; at < text.size();) {
      const size_t step = 1 + rng() % 40;
      carry += text.substr(at, step);
      at += step;
      const bool end = at >= text.size();
      const size_t usable = end ? carry.size() : utf8_safe_end(carry);
      const size_t cut = split_pretokens(std::string_view(carry).substr(0, usable), end,
                                         [&](std::string_view p) { streamed.emplace_back(p); });
      carry.erase(0, cut);
    }
    ASSERT_EQ(streamed, whole) << "trial " << trial;
  }
}

TEST(BpeTokenizer, MergesApplyLowestRankFirstLeftmostFirst) {
  // ids: 'a' 97, 'b' 98, 'c' 99; merges: (b, c) -> 256, (a, b) -> 257, (a, 256) -> 258
  BpeTokenizer t = BpeTokenizer::from_merges({{'b', 'c'}, {'a', 'b'}, {'a', 256}});
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{258}));  // bc first (rank 0), then a+bc
  EXPECT_EQ(t.encode("abab"), (std::vector<int32_t>{257, 257}));
  EXPECT_EQ(t.encode("ab c"),
            (std::vector<int32_t>{257, ' ', 'c'}));  // pieces "ab", " c": no merge across
  // A merge that spells an existing token keeps that token's id.
  BpeTokenizer d = BpeTokenizer::from_merges({{'a', 'b'}, {'b', 'c'}, {256, 'c'}, {'a', 257}});
  EXPECT_EQ(d.vocab_size(), 259);
  EXPECT_EQ(d.encode("abc"), (std::vector<int32_t>{258}));
}

class BpeFiles : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_.path() / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  testing::TempDir dir_;
};

TEST_F(BpeFiles, TrainingIsDeterministicAndRoundTripsAnyTextAndBytes) {
  std::mt19937 rng(3);
  const std::string corpus = write("corpus.txt", random_text(rng, 60000));
  BpeTrainOptions o;
  o.vocab_size = 400;
  BpeTrainReport r = train_bpe(corpus, o);
  EXPECT_EQ(r.tokenizer.vocab_size(), 400);
  EXPECT_EQ(r.bytes, static_cast<int64_t>(std::filesystem::file_size(corpus)));
  EXPECT_GT(r.distinct, 10);
  EXPECT_EQ(train_bpe(corpus, o).tokenizer.to_json(),
            r.tokenizer.to_json());  // the same file twice
  const BpeTokenizer& t = r.tokenizer;
  for (int trial = 0; trial < 100; ++trial) {
    const std::string text = random_text(rng, rng() % 300);
    const std::vector<int32_t> ids = t.encode(text);
    ASSERT_EQ(t.decode(ids), text);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.vocab_size());
    std::string bytes(rng() % 200, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    ASSERT_EQ(t.decode(t.encode(bytes)), bytes);
  }
  // Merges compress the text they were learned on.
  const std::string sample = random_text(rng, 5000);
  EXPECT_LT(t.encode(sample).size(), sample.size() / 2);
  // The JSON reads back to the same tokenizer.
  const BpeTokenizer back = BpeTokenizer::from_json(t.to_json(), "t.json");
  EXPECT_EQ(back.vocab_size(), t.vocab_size());
  EXPECT_EQ(back.to_json(), t.to_json());
  EXPECT_EQ(back.encode(sample), t.encode(sample));
}

TEST_F(BpeFiles, CorpusThatIsNotUtf8IsRefusedUnlessAllowed) {
  const std::string path =
      write("latin1.txt", std::string(100, 'a') + " caf\xE9 " + std::string(100, 'b'));
  BpeTrainOptions o;
  o.vocab_size = 260;
  try {
    train_bpe(path, o);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("byte 104 (0xe9) is not UTF-8"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("--allow-invalid-utf8"), std::string::npos) << e.message();
  }
  o.allow_invalid_utf8 = true;
  BpeTrainReport r = train_bpe(path, o);
  EXPECT_EQ(r.invalid_bytes, 1);
  const std::string text = "caf\xE9 \xFF";
  EXPECT_EQ(r.tokenizer.decode(r.tokenizer.encode(text)), text);
  EXPECT_THROW(train_bpe(write("empty.txt", ""), o), Error);
  o.vocab_size = 256;
  EXPECT_THROW(train_bpe(path, o), Error);
}

std::string error_of(const std::string& json) {
  try {
    BpeTokenizer::from_json(json, "tok.json");
  } catch (const Error& e) {
    return e.message();
  }
  return "(accepted)";
}

TEST(BpeTokenizer, AddedTokensAreCutOutBeforePretokenizingAndRoundTrip) {
  BpeTokenizer t = BpeTokenizer::from_merges({{'a', 'b'}});  // ab: 256
  t.add_special_tokens({"<|endoftext|>", "<s>", "<s>>"});    // 257, 258, 259
  EXPECT_EQ(t.vocab_size(), 260);
  EXPECT_EQ(t.encode("ab<|endoftext|>ab"), (std::vector<int32_t>{256, 257, 256}));
  // The text on either side is pre-tokenized as if it ended or began there ("a " -> "a", " ").
  EXPECT_EQ(t.encode("a <|endoftext|> b"), (std::vector<int32_t>{'a', ' ', 257, ' ', 'b'}));
  EXPECT_EQ(t.encode("<s>>ab<s>"), (std::vector<int32_t>{259, 256, 258}));  // the longest at a byte
  EXPECT_EQ(t.encode("<|endoftext").size(), 11u);  // a part of one is plain text: byte tokens
  EXPECT_EQ(t.decode(t.encode("x<|endoftext|><s>y")), "x<|endoftext|><s>y");
  EXPECT_THROW(t.add_special_tokens({"ab"}), Error);  // already a token
  const BpeTokenizer back = BpeTokenizer::from_json(t.to_json(), "t.json");
  EXPECT_EQ(back.vocab_size(), 260);
  EXPECT_EQ(back.to_json(), t.to_json());
  EXPECT_EQ(back.encode("a<s>>b<|endoftext|>"), t.encode("a<s>>b<|endoftext|>"));
}

TEST_F(BpeFiles, SpecialTokensStreamAcrossChunksAndStayOutOfTraining) {
  // A special across the 1 MiB chunk boundary of stream_pretokens, others around it.
  std::string text;
  while (text.size() < (size_t{1} << 20) - 6) text += "the cat sat<|endoftext|> on mats. ";
  text.resize((size_t{1} << 20) - 6);
  text += "<|endoftext|>a cat<|endoftext|>";
  const std::string corpus = write("docs.txt", text);
  const std::vector<std::string> specials = {"<|endoftext|>"};
  std::vector<std::string> whole, streamed;
  split_specials(
      text, specials,
      [&](std::string_view part) {
        split_pretokens(part, true, [&](std::string_view p) { whole.emplace_back(p); });
      },
      [&](size_t) { whole.emplace_back("SPECIAL"); });
  int64_t next_offset = 0;
  stream_pretokens(
      corpus, false,
      [&](std::string_view p, int64_t offset) {
        EXPECT_EQ(offset, next_offset);
        next_offset += static_cast<int64_t>(p.size());
        streamed.emplace_back(p);
      },
      {}, specials,
      [&](size_t which, int64_t offset) {
        EXPECT_EQ(which, 0u);
        EXPECT_EQ(offset, next_offset);
        next_offset += 13;
        streamed.emplace_back("SPECIAL");
      });
  EXPECT_EQ(next_offset, static_cast<int64_t>(text.size()));
  ASSERT_EQ(streamed, whole);

  BpeTrainOptions o;
  o.vocab_size = 264;  // 7 merges (the corpus has 14 to give) and the special
  o.special_tokens = specials;
  const BpeTokenizer t = train_bpe(corpus, o).tokenizer;
  EXPECT_EQ(t.vocab_size(), 264);
  EXPECT_EQ(t.added_texts(), specials);
  EXPECT_EQ(t.added_id(0), 263);
  for (int32_t id = 256; id < 263; ++id)  // no merge learned the special's pieces ("<|", "|>")
    EXPECT_EQ(t.token_bytes(id).find("|>"), std::string::npos) << t.token_bytes(id);
  EXPECT_EQ(t.decode(t.encode(text)), text);
}

TEST(BpeTokenizerFile, HostileFilesAreRefusedNamingTheProblem) {
  const std::string good = BpeTokenizer::from_merges({{'a', 'b'}}).to_json();
  ASSERT_EQ(error_of(good), "(accepted)");
  const auto edit = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const auto expect = [](const std::string& json, const std::string& part) {
    const std::string message = error_of(json);
    EXPECT_NE(message.find(part), std::string::npos) << "expected '" << part << "' in: " << message;
    EXPECT_EQ(message.rfind("tok.json", 0), 0u) << message;
  };
  expect("", "not valid JSON");
  expect(good.substr(0, good.size() / 2), "not valid JSON");
  expect("[1, 2]", "expected a tokenizer.json object");
  expect(std::string(100, '[') + std::string(100, ']'), "nested");
  expect(edit("\"type\": \"BPE\"", "\"type\": \"WordPiece\""),
         "model type \"WordPiece\" is not supported");
  expect(edit("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}"), "normalizer");
  expect(edit("\"added_tokens\": []", "\"added_tokens\": [{\"id\": 0}]"),
         "added_tokens[0]: expected an object with an integer \"id\" and a string \"content\"");
  const auto added = [&](const std::string& entries) {
    return edit("\"added_tokens\": []", "\"added_tokens\": [" + entries + "]");
  };
  expect(added("{\"id\": 257, \"content\": \"<s>\", \"lstrip\": true}"),
         "\"lstrip\": true is not supported");
  expect(added("{\"id\": 97, \"content\": \"<s>\"}"), "id 97 is given to two tokens");
  expect(added("{\"id\": 258, \"content\": \"<s>\"}"), "id 258 is not below 258");
  expect(added("{\"id\": 257, \"content\": \"\"}"), "an empty content");
  expect(added("{\"id\": 257, \"content\": \"<s>\"}, {\"id\": 258, \"content\": \"<s>\"}"),
         "the text '<s>' is added twice");
  EXPECT_EQ(error_of(added("{\"id\": 257, \"content\": \"<s>\", \"special\": true}")),
            "(accepted)");
  expect(edit("\"add_prefix_space\": false", "\"add_prefix_space\": true"), "add_prefix_space");
  expect(edit("\"dropout\": null", "\"dropout\": 0.1"), "dropout");
  expect(edit("\"ab\": 256", "\"ab\": 300"), "the id 300 is not in [0, 257)");
  expect(edit("\"ab\": 256", "\"ab\": -1"), "the id -1 is not in [0, 257)");
  expect(edit("\"ab\": 256", "\"ab\": \"x\""), "the id \"x\"");
  expect(edit("\"ab\": 256", "\"ab\": 97"), "id 97 is given to two tokens");
  expect(edit("\"ab\": 256", "\"a\\u4e2db\": 256"), "outside the byte-level alphabet");
  expect(edit("\"!\": 33", "\"!!\": 33"), "no token for byte 0x21");
  expect(edit("\"a b\"", "\"a  b\""), "is not two tokens separated by one space");
  expect(edit("\"a b\"", "\"a c\""), "the merged token 'ac' is not in the vocabulary");
  expect(edit("\"a b\"", "[\"a\"]"), "expected \"a b\" or [\"a\", \"b\"]");
  expect(edit("\"a b\"", "\"a b\", \"a b\""), "the same pair appears twice");
  expect(edit("\"merges\": [", "\"merges\": {\"x\": ["), "not valid JSON");
  expect(edit("\"vocab\": {", "\"vocab\": [{").substr(0, 0) +
             "{\"model\": {\"type\": \"BPE\", \"vocab\": []}, "
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "model.vocab must be an object");
  // The newer form of merges, pairs as arrays, is read too.
  EXPECT_EQ(error_of(edit("\"a b\"", "[\"a\", \"b\"]")), "(accepted)");
}

}  // namespace
}  // namespace gpuml::data
