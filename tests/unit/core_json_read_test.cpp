// Bounded JSON reading (core/json_read.h) and the deep-nesting crash of issue 16: a model file of
// 100,000 nested arrays overflowed the stack while the error message dumped the document.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>

#include "core/json_read.h"
#include "io_temp_dir.h"
#include "nn/model.h"
#include "test_paths.h"

namespace gpuml {
namespace {

std::string nested_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(JsonRead, RefusesDeepNestingWithoutRecursing) {
  for (size_t depth : {size_t{65}, size_t{100'000}}) {
    std::string text = nested_arrays(depth);
    std::string message = message_of([&] { parse_json(text, "deep.json"); });
    EXPECT_NE(message.find("deep.json: JSON nested more than 64 levels deep"), std::string::npos) << message;
    EXPECT_LT(message.size(), 200u);
  }
  std::string objects;
  for (int i = 0; i < 100'000; ++i) objects += "{\"a\":";
  EXPECT_NE(message_of([&] { parse_ordered_json(objects, "o.json"); }).find("nested more than 64"),
            std::string::npos);
  EXPECT_EQ(parse_json(nested_arrays(64), "ok.json").dump(), nested_arrays(64));
}

TEST(JsonRead, ParseErrorsQuoteAShortPrefixAndKeepTheKind) {
  std::string text = "[\"" + std::string(1'000'000, 'x');  // an unterminated megabyte string
  try {
    parse_json(text, "big.json", ErrorKind::Io);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_EQ(e.message().rfind("big.json: not valid JSON: ", 0), 0u) << e.message();
    EXPECT_LT(e.message().size(), 400u);
  }
}

TEST(JsonRead, ExcerptsAreShortForAnyValue) {
  nlohmann::json big = nlohmann::json::array();
  for (int i = 0; i < 100'000; ++i) big.push_back(std::string(100, 'y'));
  std::string e = json_excerpt(big);
  EXPECT_LE(e.size(), kExcerptChars + 3);
  EXPECT_EQ(e.substr(0, 4), "[\"yy");
  EXPECT_EQ(e.substr(e.size() - 3), "...");
  EXPECT_EQ(json_excerpt(nlohmann::json{{"a", 1}}), "{\"a\":1}");
  EXPECT_EQ(json_excerpt(nlohmann::json(3)), "3");
  // Built in code rather than parsed, a value can nest deeper than a parsed one may.
  nlohmann::json deep = nlohmann::json::array();
  for (int i = 0; i < 10'000; ++i) deep = nlohmann::json::array({std::move(deep)});
  EXPECT_LE(json_excerpt(deep).size(), kExcerptChars + 3);
  EXPECT_EQ(text_excerpt("ab\ncd"), "ab\\x0acd");
  EXPECT_EQ(text_excerpt(std::string(100, 'z'), 4), "zzzz... (100 bytes)");
}

TEST(JsonRead, DeeplyNestedModelFileIsRefusedWithAClearMessage) {
  testing::TempDir dir;
  std::string path = (dir.path() / "deep.json").string();
  std::ofstream(path) << nested_arrays(100'000);
  std::string message = message_of([&] { nn::Model::from_json_file(path); });
  EXPECT_NE(message.find("model file '" + path + "': JSON nested more than 64 levels deep"), std::string::npos)
      << message;
  // A shallow non-object still names what it got, briefly.
  std::ofstream out(path, std::ios::trunc);
  out << '[';
  for (int i = 0; i < 5000; ++i) out << "11,";
  out << "1]";
  out.close();
  message = message_of([&] { nn::Model::from_json_file(path); });
  EXPECT_NE(message.find("model: expected a JSON object, got [11,11,"), std::string::npos) << message;
  EXPECT_LT(message.size(), 300u);
}

// The crash as the user met it: `gpuml train --model deep.json` died with SIGSEGV.
TEST(JsonRead, TrainWithADeeplyNestedModelFileExitsWithAnError) {
  testing::TempDir dir;
  std::string model = (dir.path() / "deep.json").string(), csv = (dir.path() / "d.csv").string();
  std::ofstream(model) << nested_arrays(100'000);
  std::ofstream(csv) << "a,b,label\n1,2,0\n3,4,1\n";
  std::string command = std::string("'") + testing::gpuml_cli_path() + "' train --quiet --device cpu --data '" + csv +
                        "' --model '" + model + "' --out '" + (dir.path() / "run").string() + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 4096> buffer{};
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) output.append(buffer.data(), n);
  int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("JSON nested more than 64 levels deep"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "run"));
}

}  // namespace
}  // namespace gpuml
