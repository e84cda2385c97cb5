#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "core/atomic_file.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;

// Random values that every dtype holds exactly, never all zeros.
Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937& rng) {
  std::vector<double> values(static_cast<size_t>(numel(shape)));
  std::uniform_int_distribution<int> small_int(-1000, 1000);
  std::normal_distribution<double> normal(0.0, 3.0);
  for (double& v : values) {
    switch (dtype) {
      case DType::boolean:
        v = rng() & 1;
        break;
      case DType::u8:
        v = rng() % 256;
        break;
      case DType::i32:
      case DType::i64:
        v = small_int(rng);
        break;
      default:
        v = normal(rng);
        break;
    }
  }
  return Tensor::from_values(shape, values, dtype);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

TEST(IoSafetensors, RoundTripsEveryDtypeAndShapeInInsertionOrder) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  const std::vector<Shape> shapes = {{}, {0}, {5}, {2, 3}, {2, 0, 4}, {3, 1, 4}, {1, 7, 2, 3}};
  NamedTensors tensors;
  // Reverse-alphabetical names, so a writer that sorted would be caught.
  int index = 99;
  for (DType dtype : kAllDTypes)
    for (const Shape& shape : shapes)
      tensors.emplace_back(fmt::format("z{:02d}.{}.{}", index--, dtype, shape.size()),
                           random_tensor(shape, dtype, rng));
  const SafetensorsMetadata metadata = {
      {"format", "pt"}, {"gpuml.epoch", "3"}, {"note", "ünïcode ✓"}};

  TempDir dir;
  auto path = dir.path() / "all.safetensors";
  save_safetensors(path, tensors, metadata);
  SafetensorsFile loaded = load_safetensors(path);

  EXPECT_EQ(loaded.metadata, metadata);
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    const auto& [got_name, got] = loaded.tensors[i];
    SCOPED_TRACE(name);
    EXPECT_EQ(got_name, name);
    EXPECT_EQ(got.dtype(), expected.dtype());
    EXPECT_EQ(got.shape(), expected.shape());
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_TRUE(got.device().is_host());
    EXPECT_TRUE(same_bytes(got, expected));
    EXPECT_TRUE(same_bytes(loaded.at(name), expected));
  }
  // The header is padded so the data section starts 8-byte aligned.
  std::string bytes = read_file_bytes(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ(header_bytes % 8, 0u);
}

TEST(IoSafetensors, WritesStridedViewsInLogicalRowMajorOrder) {
  std::mt19937 rng(std::random_device{}());
  Tensor base = random_tensor({4, 5, 6}, DType::f32, rng);
  Tensor row = random_tensor({1, 6}, DType::i64, rng);
  NamedTensors tensors = {
      {"permuted", base.permute({2, 0, 1})},
      {"sliced", base.slice(1, 1, 5, 2).slice(2, 4, 6)},
      {"broadcast", row.broadcast_to({3, 6})},
      {"scalar_view", base.slice(0, 2, 3).slice(1, 3, 4).slice(2, 1, 2).reshape({})},
  };
  TempDir dir;
  auto path = dir.path() / "views.safetensors";
  save_safetensors(path, tensors);
  SafetensorsFile loaded = load_safetensors(path);
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, view] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_EQ(loaded.at(name).shape(), view.shape());
    EXPECT_EQ(loaded.at(name).to_doubles(), view.to_doubles());
  }
}

TEST(IoSafetensors, TinyFileIsByteExact) {
  TempDir dir;
  auto path = dir.path() / "tiny.safetensors";
  Tensor w = Tensor::from_values({2}, {1.5, -2.0}, DType::f32);
  Tensor flags = Tensor::from_values({}, {1}, DType::boolean);
  save_safetensors(path, {{"w", w}, {"flags", flags}}, {{"format", "pt"}});

  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("flags":{"dtype":"BOOL","shape":[],"data_offsets":[8,9]}})";
  ASSERT_EQ(header.size(), 142u);
  std::string expected("\x90\0\0\0\0\0\0\0", 8);  // 142 + 2 spaces of padding = 144
  expected += header + "  ";
  expected += std::string("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8);  // 1.5f, -2.0f little-endian
  expected += std::string("\x01", 1);
  EXPECT_EQ(read_file_bytes(path), expected);
}

TEST(IoSafetensors, EmptyFileListAndNoMetadata) {
  TempDir dir;
  auto path = dir.path() / "empty.safetensors";
  save_safetensors(path, {});
  EXPECT_EQ(read_file_bytes(path), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  SafetensorsFile loaded = load_safetensors(path);
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_TRUE(loaded.metadata.empty());
  EXPECT_FALSE(loaded.contains("x"));
  EXPECT_THROW(loaded.at("x"), Error);
}

void expect_write_rejected(const NamedTensors& tensors, const std::string& fragment) {
  TempDir dir;
  try {
    save_safetensors(dir.path() / "bad.safetensors", tensors);
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Invalid);
    EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
  }
  EXPECT_TRUE(dir.list().empty()) << "a rejected save left a file behind";
}

TEST(IoSafetensors, WriterRejectsBadNames) {
  Tensor t = Tensor::from_values({1}, {2.5}, DType::f32);
  expect_write_rejected({{"a", t}, {"a", t}}, "duplicate tensor name 'a'");
  expect_write_rejected({{"__metadata__", t}}, "reserved");
  expect_write_rejected({{"", t}}, "empty name");
  expect_write_rejected({{std::string("bad\xff", 4), t}}, "cannot encode the header");
  expect_write_rejected({{"undefined", Tensor()}}, "tensor 'undefined' is undefined");
}

}  // namespace
}  // namespace gpuml
