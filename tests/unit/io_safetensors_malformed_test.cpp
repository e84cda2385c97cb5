// Every malformed safetensors file the reader must reject, each with a message naming the problem.
#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "core/error.h"
#include "core/atomic_file.h"
#include "io/safetensors.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file with `header` as its JSON and `data` after it; the size field says `header_size` if set.
std::string make_file(const std::string& header, const std::string& data,
                      std::optional<uint64_t> header_size = std::nullopt) {
  return u64_le(header_size.value_or(header.size())) + header + data;
}

struct Rejection {
  ErrorKind kind;
  std::string message;
};

Rejection load_bytes_expecting_error(const std::string& bytes) {
  TempDir dir;
  auto path = dir.path() / "bad.safetensors";
  write_file_atomically(path, bytes);
  try {
    load_safetensors(path);
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(path.string()), std::string::npos)
        << "message must name the file: " << e.message();
    return {e.kind(), e.message()};
  }
  ADD_FAILURE() << "malformed file was accepted";
  return {ErrorKind::Internal, ""};
}

void expect_rejected(const std::string& bytes, ErrorKind kind,
                     const std::vector<std::string>& fragments) {
  Rejection r = load_bytes_expecting_error(bytes);
  EXPECT_EQ(r.kind, kind) << r.message;
  for (const auto& f : fragments)
    EXPECT_NE(r.message.find(f), std::string::npos) << "want '" << f << "' in: " << r.message;
}

const std::string kEightBytes("\x01\x02\x03\x04\x05\x06\x07\x08", 8);

TEST(IoSafetensorsMalformed, FileShorterThanEightBytes) {
  expect_rejected("", ErrorKind::Io, {"0 bytes", "shorter than the 8-byte"});
  expect_rejected(std::string("\x10\0\0", 3), ErrorKind::Io,
                  {"3 bytes", "shorter than the 8-byte"});
}

TEST(IoSafetensorsMalformed, HeaderSizeOverLimitOrPastEndOfFile) {
  expect_rejected(make_file("{}", "", 100'000'001), ErrorKind::Invalid,
                  {"100000001", "exceeds the 100000000 byte limit"});
  expect_rejected(make_file("{}", "", 0xffffffffffffffffull), ErrorKind::Invalid, {"exceeds"});
  expect_rejected(make_file("{}", "", 3), ErrorKind::Io,
                  {"header size 3 runs past the end of the 10-byte file"});
}

TEST(IoSafetensorsMalformed, HeaderNotJsonOrNotAnObject) {
  expect_rejected(make_file(R"({"a": {"dtype": "F32",)", ""), ErrorKind::Invalid,
                  {"not valid JSON"});
  expect_rejected(make_file("{\"a\xff\": 1}", ""), ErrorKind::Invalid,
                  {"not valid JSON"});  // not UTF-8
  expect_rejected(make_file("[1, 2, 3]", ""), ErrorKind::Invalid, {"not a JSON object"});
  expect_rejected(make_file("", ""), ErrorKind::Invalid, {"not a JSON object"});
  expect_rejected(make_file("{} {}", ""), ErrorKind::Invalid, {"not valid JSON"});
}

TEST(IoSafetensorsMalformed, EntryMissingFieldsOrWrongTypes) {
  expect_rejected(make_file(R"({"w": 3})", ""), ErrorKind::Invalid,
                  {"tensor 'w'", "not a JSON object"});
  expect_rejected(make_file(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", kEightBytes),
                  ErrorKind::Invalid, {"tensor 'w'", "missing \"dtype\""});
  expect_rejected(make_file(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", kEightBytes),
                  ErrorKind::Invalid, {"tensor 'w'", "missing \"shape\""});
  expect_rejected(make_file(R"({"w": {"dtype": "F32", "shape": [2]}})", kEightBytes),
                  ErrorKind::Invalid, {"tensor 'w'", "missing \"data_offsets\""});
  expect_rejected(
      make_file(R"({"w": {"dtype": 7, "shape": [2], "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "\"dtype\" must be a string"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "\"shape\" must be an array"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "\"data_offsets\" must be [begin, end]"});
  expect_rejected(make_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}})",
                            kEightBytes),
                  ErrorKind::Invalid, {"tensor 'w'", "\"data_offsets\" must be [begin, end]"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "\"data_offsets\" must be [begin, end]"});
}

TEST(IoSafetensorsMalformed, UnknownDtype) {
  expect_rejected(make_file(R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})",
                            kEightBytes),
                  ErrorKind::Invalid, {"tensor 'w'", "unsupported dtype \"F8_E4M3\""});
  expect_rejected(
      make_file(R"({"w": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "dtype \"f32\""});
}

TEST(IoSafetensorsMalformed, NegativeOrNonIntegerDims) {
  expect_rejected(
      make_file(R"({"w": {"dtype": "U8", "shape": [2, -4], "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "dim 1 is -4", "non-negative integers"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "U8", "shape": [2.5], "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "dim 0 is 2.5"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "U8", "shape": ["8"], "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "dim 0 is \"8\""});
  expect_rejected(
      make_file(
          R"({"w": {"dtype": "U8", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
          kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "too large"});
}

TEST(IoSafetensorsMalformed, OffsetsOutOfRangeReversedOrWrongSize) {
  expect_rejected(
      make_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "[4, 12]", "run past the data section (8 bytes)"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "begin > end"});
  expect_rejected(
      make_file(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", kEightBytes),
      ErrorKind::Invalid, {"tensor 'w'", "hold 8 bytes but F32 (3,) needs 12"});
}

TEST(IoSafetensorsMalformed, OverlapsGapsAndTrailingBytes) {
  expect_rejected(make_file(R"({"a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]},)"
                            R"( "b": {"dtype": "I32", "shape": [1], "data_offsets": [4, 8]}})",
                            kEightBytes),
                  ErrorKind::Invalid, {"tensor 'b'", "overlap tensor 'a'"});
  expect_rejected(make_file(R"({"a": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]},)"
                            R"( "b": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}})",
                            kEightBytes),
                  ErrorKind::Invalid, {"tensor 'b'", "gap of 2 unindexed bytes"});
  expect_rejected(make_file(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})",
                            kEightBytes.substr(0, 4)),
                  ErrorKind::Invalid, {"tensor 'a'", "gap of 2"});
  expect_rejected(
      make_file(R"({"a": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}})", kEightBytes),
      ErrorKind::Invalid, {"4 trailing bytes"});
}

TEST(IoSafetensorsMalformed, DuplicateNamesAndKeys) {
  expect_rejected(make_file(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                            R"( "a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
                            kEightBytes),
                  ErrorKind::Invalid, {"duplicate tensor name 'a'"});
  expect_rejected(
      make_file(R"({"a": {"dtype": "U8", "dtype": "I8", "shape": [8], "data_offsets": [0, 8]}})",
                kEightBytes),
      ErrorKind::Invalid, {"duplicate key 'dtype'"});
}

TEST(IoSafetensorsMalformed, MetadataMustMapStringsToStrings) {
  expect_rejected(make_file(R"({"__metadata__": {"epoch": 3}})", ""), ErrorKind::Invalid,
                  {"metadata 'epoch' must be a string, got 3"});
  expect_rejected(make_file(R"({"__metadata__": ["x"]})", ""), ErrorKind::Invalid,
                  {"\"__metadata__\" must be an object"});
}

TEST(IoSafetensorsMalformed, BoolBytesMustBeZeroOrOne) {
  expect_rejected(make_file(R"({"m": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}})",
                            std::string("\x01\x00\x02", 3)),
                  ErrorKind::Invalid, {"tensor 'm'", "element 2 is 2"});
}

TEST(IoSafetensorsMalformed, TruncatedFiles) {
  TempDir dir;
  auto good = dir.path() / "good.safetensors";
  Tensor w = Tensor::from_values({2, 3}, {0.5, -1.25, 2, 3.75, -4, 5.5}, DType::f64);
  save_safetensors(good, {{"w", w}, {"b", Tensor::from_values({3}, {7, -8, 9}, DType::i32)}});
  const std::string bytes = read_file_bytes(good);
  ASSERT_NO_THROW(load_safetensors(good));
  // Cut in the data section: the last tensor runs past the end.
  expect_rejected(bytes.substr(0, bytes.size() - 1), ErrorKind::Invalid,
                  {"tensor 'b'", "run past the data section"});
  // Cut in the header.
  expect_rejected(bytes.substr(0, 20), ErrorKind::Io, {"runs past the end of the 20-byte file"});
  // Cut in the size field.
  expect_rejected(bytes.substr(0, 6), ErrorKind::Io, {"shorter than the 8-byte"});
}

TEST(IoSafetensorsMalformed, MissingFileIsAnIoError) {
  TempDir dir;
  try {
    load_safetensors(dir.path() / "nope.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.message().find("nope.safetensors"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("No such file"), std::string::npos) << e.message();
  }
}

// A poor man's fuzz target: random corruptions of a valid file either load or throw
// gpuml::Error; nothing else (no crash, no foreign exception, no huge allocation).
TEST(IoSafetensorsMalformed, RandomCorruptionsLoadOrThrowGpumlErrors) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  TempDir dir;
  auto good = dir.path() / "good.safetensors";
  save_safetensors(good,
                   {{"w", Tensor::from_values({2, 2}, {1.5, -2, 3, 4.25}, DType::f32)},
                    {"mask", Tensor::from_values({3}, {1, 0, 1}, DType::boolean)},
                    {"ids", Tensor::from_values({2}, {7, 9}, DType::i64)}},
                   {{"format", "pt"}});
  const std::string original = read_file_bytes(good);
  auto bad = dir.path() / "bad.safetensors";
  int rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = original;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes[at] = "{}[]\",:0123456789-. e"[rng() % 22];
          break;
        case 2:
          bytes.erase(at, 1 + rng() % 8);
          break;
        default:
          bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(rng()));
          break;
      }
      if (bytes.empty()) bytes.push_back('x');
    }
    write_file_atomically(bad, bytes);
    try {
      load_safetensors(bad);
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "foreign exception: " << e.what();
    }
  }
  EXPECT_GT(rejected, 150);  // most corruptions must be caught
}

}  // namespace
}  // namespace gpuml
