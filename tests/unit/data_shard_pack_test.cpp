// `gpuml data pack` round trips: pack -> read -> the same records, for every input kind.
#include <gtest/gtest.h>
#include <zip.h>

#include <fmt/ranges.h>

#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/csv.h"
#include "data/image_codec.h"
#include "data/npy.h"
#include "data/npy_format.h"
#include "data/pack.h"
#include "data/shard_reader.h"
#include "data_test_fixture.h"
#include "io_temp_dir.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::random_bytes;

void write_idx(const fs::path& path, uint8_t type, const Shape& shape, const std::vector<uint8_t>& data) {
  std::string bytes = {0, 0, static_cast<char>(type), static_cast<char>(shape.size())};
  for (int64_t d : shape)
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<char>((d >> s) & 0xff));
  bytes.append(data.begin(), data.end());
  write_file_atomically(path, bytes);
}

// Records of a split as (label, sample bytes), sorted, to compare regardless of order.
std::vector<std::pair<int64_t, std::vector<uint8_t>>> records_of(const InMemoryDataset& d) {
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> out;
  size_t sample = d.features().nbytes() / static_cast<size_t>(d.size());
  const auto* x = static_cast<const uint8_t*>(d.features().raw_data());
  for (int64_t r = 0; r < d.size(); ++r)
    out.push_back({d.labels().data<int64_t>()[r], std::vector<uint8_t>(x + r * sample, x + (r + 1) * sample)});
  return out;
}

void expect_same_tensor(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.numel(), b.numel());
  EXPECT_EQ(0, std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()));
}

TEST(Pack, IdxDirectoryRoundTripsInSmallShards) {
  TempDir dir;
  fs::path in = dir.path() / "idx";
  fs::create_directories(in);
  std::vector<uint8_t> train_x = random_bytes(250 * 20, 1), train_y = random_bytes(250, 2), test_x = random_bytes(40 * 20, 3),
                       test_y = random_bytes(40, 4);
  for (uint8_t& y : train_y) y %= 10;
  for (uint8_t& y : test_y) y %= 10;
  write_idx(in / "train-images-idx3-ubyte", 0x08, {250, 5, 4}, train_x);
  write_idx(in / "train-labels-idx1-ubyte", 0x08, {250}, train_y);
  write_idx(in / "t10k-images-idx3-ubyte", 0x08, {40, 5, 4}, test_x);
  write_idx(in / "t10k-labels-idx1-ubyte", 0x08, {40}, test_y);
  PackOptions o;
  o.shard_bytes = 28 * 16;  // 16 records of 20 + 8 bytes per shard
  int64_t last_progress = 0;
  o.on_progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 290);
    EXPECT_GT(done, last_progress);
    last_progress = done;
  };
  PackReport r = pack_dataset(in.string(), dir.path() / "out", o);
  EXPECT_EQ(last_progress, 290);
  EXPECT_EQ(r.manifest.field("x").shape, (Shape{1, 5, 4}));
  EXPECT_EQ(r.manifest.split("train").shards.size(), 16u);
  ShardDataset ds(dir.path() / "out");
  InMemoryDataset train = ds.load_split("train"), test = ds.load_split("test");
  EXPECT_EQ(0, std::memcmp(train.features().raw_data(), train_x.data(), train_x.size()));
  EXPECT_EQ(0, std::memcmp(test.features().raw_data(), test_x.data(), test_x.size()));
  for (int64_t i = 0; i < 250; ++i) ASSERT_EQ(train.labels().data<int64_t>()[i], train_y[static_cast<size_t>(i)]);
  for (int64_t i = 0; i < 40; ++i) ASSERT_EQ(test.labels().data<int64_t>()[i], test_y[static_cast<size_t>(i)]);
  EXPECT_TRUE(verify_shard_dataset(dir.path() / "out").empty());

  // A single images file with --labels; f32 IDX samples are decoded from big-endian.
  std::vector<uint8_t> floats_be;
  for (int i = 0; i < 30; ++i) {
    float v = static_cast<float>(i) * 0.25f - 3.0f;
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int s = 24; s >= 0; s -= 8) floats_be.push_back(static_cast<uint8_t>(bits >> s));
  }
  write_idx(dir.path() / "f.idx", 0x0D, {10, 3}, floats_be);
  o.labels = (in / "t10k-labels-idx1-ubyte").string();
  o.on_progress = {};
  EXPECT_THROW(pack_dataset((dir.path() / "f.idx").string(), dir.path() / "out2", o), Error);  // 10 vs 40 labels
  write_idx(dir.path() / "l.idx", 0x08, {10}, std::vector<uint8_t>(test_y.begin(), test_y.begin() + 10));
  o.labels = (dir.path() / "l.idx").string();
  pack_dataset((dir.path() / "f.idx").string(), dir.path() / "out2", o);
  InMemoryDataset f = ShardDataset(dir.path() / "out2").load_split("train");
  for (int i = 0; i < 30; ++i) ASSERT_EQ(f.features().data<float>()[i], static_cast<float>(i) * 0.25f - 3.0f);
}

TEST(Pack, NpyPairAndNpzRoundTrip) {
  TempDir dir;
  std::mt19937 rng(5);
  std::vector<double> xv(60 * 3), yv(60);
  for (double& v : xv) v = std::uniform_real_distribution<double>(-2, 2)(rng);
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = static_cast<double>(rng() % 4);
  Tensor x = Tensor::from_values({60, 3}, xv, DType::f32), y = Tensor::from_values({60}, yv, DType::i64);
  write_npy((dir.path() / "x.npy").string(), x);
  write_npy((dir.path() / "y.npy").string(), y);
  PackOptions o;
  o.labels = (dir.path() / "y.npy").string();
  o.shard_bytes = 20 * 7;
  pack_dataset((dir.path() / "x.npy").string(), dir.path() / "npy", o);
  InMemoryDataset d = ShardDataset(dir.path() / "npy").load_split("train");
  expect_same_tensor(d.features(), x);
  expect_same_tensor(d.labels(), y);

  // An .npz with train and test arrays, u8 images (N, H, W) as numpy.savez writes them.
  Tensor images = Tensor::from_values({12, 2, 3}, std::vector<double>(72, 7.0), DType::u8);
  std::vector<uint8_t> pixels = random_bytes(72, 6);
  std::memcpy(images.raw_data(), pixels.data(), 72);
  Tensor labels = Tensor::from_values({12}, {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, DType::u8);
  std::vector<std::string> members;  // kept alive until zip_close
  auto npy_bytes = [](const Tensor& t) {
    std::string bytes = npy_v1_preamble(t.dtype(), t.shape());
    bytes.append(static_cast<const char*>(t.raw_data()), t.nbytes());
    return bytes;
  };
  for (const Tensor* t : {&images, &labels, &images, &labels}) members.push_back(npy_bytes(*t));
  int err = 0;
  zip_t* zip = zip_open((dir.path() / "d.npz").c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(zip, nullptr);
  const char* names[] = {"x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"};
  for (int i = 0; i < 4; ++i)
    zip_file_add(zip, names[i], zip_source_buffer(zip, members[i].data(), members[i].size(), 0), ZIP_FL_OVERWRITE);
  ASSERT_EQ(zip_close(zip), 0);
  pack_dataset((dir.path() / "d.npz").string(), dir.path() / "npz", {});
  ShardDataset npz(dir.path() / "npz");
  EXPECT_EQ(npz.manifest().field("x").shape, (Shape{1, 2, 3}));
  EXPECT_EQ(npz.manifest().num_classes, 4);
  for (const char* split : {"train", "test"}) {
    InMemoryDataset s = npz.load_split(split);
    EXPECT_EQ(0, std::memcmp(s.features().raw_data(), pixels.data(), 72));
    for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(s.labels().data<int64_t>()[i], i % 4);
  }
}

// An .npz member larger than one 4 MiB read chunk streams from its deflated zip member in
// several chunks, and round-trips exactly.
TEST(Pack, NpzStreamsLargeDeflatedMembersInChunks) {
  TempDir dir;
  const int64_t n = 2600, f = 2000;  // 5.2 MB of u8: two chunks
  Tensor x = Tensor::from_values({n, f}, std::vector<double>(static_cast<size_t>(n * f), 0.0), DType::u8);
  std::vector<uint8_t> bytes = random_bytes(static_cast<size_t>(n * f), 11);
  for (size_t i = 0; i < bytes.size(); i += 3) bytes[i] = 0;  // compressible, so deflate is used for real
  std::memcpy(x.raw_data(), bytes.data(), bytes.size());
  std::vector<double> yv(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) yv[static_cast<size_t>(i)] = static_cast<double>((i * 7) % 5);
  Tensor y = Tensor::from_values({n}, yv, DType::i32);
  std::string xb = npy_v1_preamble(x.dtype(), x.shape()), yb = npy_v1_preamble(y.dtype(), y.shape());
  xb.append(static_cast<const char*>(x.raw_data()), x.nbytes());
  yb.append(static_cast<const char*>(y.raw_data()), y.nbytes());
  int err = 0;
  zip_t* zip = zip_open((dir.path() / "big.npz").c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(zip, nullptr);
  zip_int64_t xi = zip_file_add(zip, "x.npy", zip_source_buffer(zip, xb.data(), xb.size(), 0), 0);
  zip_file_add(zip, "y.npy", zip_source_buffer(zip, yb.data(), yb.size(), 0), 0);
  zip_set_file_compression(zip, static_cast<zip_uint64_t>(xi), ZIP_CM_DEFLATE, 6);
  ASSERT_EQ(zip_close(zip), 0);
  ASSERT_LT(std::filesystem::file_size(dir.path() / "big.npz"), bytes.size()) << "the member is not deflated";
  PackOptions o;
  o.shard_bytes = 1 << 20;
  pack_dataset((dir.path() / "big.npz").string(), dir.path() / "out", o);
  InMemoryDataset d = ShardDataset(dir.path() / "out").load_split("train");
  ASSERT_EQ(d.size(), n);
  EXPECT_EQ(0, std::memcmp(d.features().raw_data(), bytes.data(), bytes.size()));
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(d.labels().data<int64_t>()[i], (i * 7) % 5) << i;
}

TEST(Pack, CsvRoundTripsAsTheCsvReaderReadsIt) {
  TempDir dir;
  std::ofstream(dir.path() / "t.csv") << "a,b,kind\n0.5,-1.25,2\n3,4.75,0\n-7.5,8,1\n";
  PackOptions o;
  o.csv_label = "kind";
  pack_dataset((dir.path() / "t.csv").string(), dir.path() / "csv", o);
  InMemoryDataset d = ShardDataset(dir.path() / "csv").load_split("train");
  CsvOptions c;
  c.label_name = "kind";
  CsvData expected = read_csv((dir.path() / "t.csv").string(), c);
  expect_same_tensor(d.features(), expected.features);
  expect_same_tensor(d.labels(), expected.labels);
}

TEST(Pack, ImageFolderPngExactJpegAsDecodedAndResized) {
  TempDir dir;
  fs::path root = dir.path() / "imgs";
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> expected;  // gray PNG: (label, pixels)
  for (int c = 0; c < 3; ++c) {
    fs::create_directories(root / "train" / fmt::format("class{}", c));
    for (int i = 0; i < 4; ++i) {
      Image img{6, 5, 1, random_bytes(30, static_cast<uint32_t>(10 * c + i))};
      write_png_file((root / "train" / fmt::format("class{}", c) / fmt::format("{}.png", i)).string(), img);
      expected.push_back({c, img.pixels});  // (1, 5, 6) CHW = HW for one channel
    }
  }
  fs::create_directories(root / "test" / "class1");
  write_png_file((root / "test" / "class1" / "t.png").string(), Image{6, 5, 1, random_bytes(30, 99)});
  PackOptions o;
  o.shard_bytes = 100;
  PackReport r = pack_dataset(root.string(), dir.path() / "png", o);
  EXPECT_EQ(r.manifest.field("x").shape, (Shape{1, 5, 6}));
  EXPECT_EQ(r.manifest.split("test").records, 1);
  ShardDataset png(dir.path() / "png");
  auto got = records_of(png.load_split("train"));
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(png.load_split("test").labels().data<int64_t>()[0], 1);

  // JPEG is lossy: packed pixels equal the decoder's own output, and are near the originals.
  fs::path jroot = dir.path() / "jpegs";
  std::vector<std::vector<uint8_t>> originals;
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(jroot / fmt::format("c{}", c));
    Image img{16, 8, 3, {}};
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 16; ++x)
        for (int ch = 0; ch < 3; ++ch) img.pixels.push_back(static_cast<uint8_t>(20 + 6 * x + 8 * y + 20 * ch + 30 * c));
    std::string path = (jroot / fmt::format("c{}", c) / "a.JPG").string();
    write_jpeg_file(path, img, 95);
    originals.push_back(to_chw_resized(img, 16, 8));
    Image decoded = decode_image_file(path);
    ASSERT_EQ(decoded.channels, 3);
  }
  pack_dataset(jroot.string(), dir.path() / "jpg", {});
  InMemoryDataset j = ShardDataset(dir.path() / "jpg").load_split("train");
  ASSERT_EQ(j.features().shape(), (Shape{2, 3, 8, 16}));
  for (int64_t r = 0; r < 2; ++r) {
    int64_t label = j.labels().data<int64_t>()[r];
    std::vector<uint8_t> decoded =
        to_chw_resized(decode_image_file((jroot / fmt::format("c{}", label) / "a.JPG").string()), 16, 8);
    const uint8_t* packed = static_cast<const uint8_t*>(j.features().raw_data()) + r * 384;
    EXPECT_EQ(std::vector<uint8_t>(packed, packed + 384), decoded);
    for (size_t i = 0; i < 384; ++i)
      ASSERT_NEAR(packed[i], originals[static_cast<size_t>(label)][i], 12) << "pixel " << i;
  }

  // --image-size resizes (bilinear): a half-size gray image of the PNGs matches to_chw_resized.
  o.image_width = 3;
  o.image_height = 2;
  pack_dataset(root.string(), dir.path() / "small", o);
  InMemoryDataset s = ShardDataset(dir.path() / "small").load_split("train");
  ASSERT_EQ(s.features().shape(), (Shape{12, 1, 2, 3}));
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> want;
  for (auto& [label, pixels] : expected) want.push_back({label, to_chw_resized(Image{6, 5, 1, pixels}, 3, 2)});
  auto small = records_of(s);
  std::sort(small.begin(), small.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(small, want);
}

// Issue 18 (6): without --image-size/--image-channels the shape was the first image's after the
// seeded shuffle, so two seeds gave two shapes for one folder. Now the most common size and
// channel count win whatever the order; conversions and skipped files are reported; the class
// folder names are kept in the manifest.
TEST(Pack, ImageFolderShapeIsTheMostCommonWhateverTheSeed) {
  TempDir dir;
  fs::path root = dir.path() / "imgs";
  for (const char* cls : {"cat", "dog"}) {
    fs::create_directories(root / cls);
    for (int i = 0; i < 3; ++i)
      write_png_file((root / cls / fmt::format("{}.png", i)).string(), Image{16, 16, 3, random_bytes(768, static_cast<uint32_t>(i))});
  }
  write_png_file((root / "dog" / "odd.png").string(), Image{24, 20, 1, random_bytes(480, 7)});  // gray 24x20
  std::ofstream(root / "cat" / "notes.txt") << "not an image";
  for (uint64_t seed = 0; seed < 6; ++seed) {
    PackOptions o;
    o.seed = seed;
    PackReport r = pack_dataset(root.string(), dir.path() / fmt::format("out{}", seed), o);
    EXPECT_EQ(r.manifest.field("x").shape, (Shape{3, 16, 16})) << "seed " << seed;
    EXPECT_EQ(r.manifest.class_names, (std::vector<std::string>{"cat", "dog"}));
    std::string notes = fmt::format("{}", fmt::join(r.notes, "\n"));
    EXPECT_NE(notes.find("image size 16x16: the most common, 6 of 7 images"), std::string::npos) << notes;
    EXPECT_NE(notes.find("channels 3 (RGB): the most common, 6 of 7 images"), std::string::npos) << notes;
    EXPECT_NE(notes.find("1 of 7 images resized to 16x16, 1 gray to RGB"), std::string::npos) << notes;
    EXPECT_NE(notes.find("skipped 1 files that are not .png/.jpg/.jpeg"), std::string::npos) << notes;
    EXPECT_NE(notes.find("notes.txt"), std::string::npos) << notes;
  }
  EXPECT_EQ(read_shard_manifest(dir.path() / "out1").class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_NE(describe_shard_dataset(dir.path() / "out1").find("classes: 2 (cat, dog)"), std::string::npos);
}

TEST(Pack, ResizeKeepsConstantsAndIdentity) {
  Image flat{7, 5, 3, std::vector<uint8_t>(105, 77)};
  for (uint8_t v : to_chw_resized(flat, 3, 11)) ASSERT_EQ(v, 77);
  Image img{4, 3, 3, random_bytes(36, 8)};
  std::vector<uint8_t> chw = to_chw_resized(img, 4, 3);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 12; ++i) ASSERT_EQ(chw[static_cast<size_t>(c * 12 + i)], img.pixels[static_cast<size_t>(i * 3 + c)]);
}

TEST(Pack, BadInputsAreRefusedWithoutAManifest) {
  TempDir dir;
  std::ofstream(dir.path() / "bad.png") << "not an image at all";
  fs::create_directories(dir.path() / "imgs" / "a");
  fs::copy(dir.path() / "bad.png", dir.path() / "imgs" / "a" / "x.png");
  try {
    pack_dataset((dir.path() / "imgs").string(), dir.path() / "out", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("x.png: not a PNG or JPEG file"), std::string::npos) << e.message();
  }
  EXPECT_FALSE(is_shard_dataset(dir.path() / "out"));
  EXPECT_THROW(pack_dataset((dir.path() / "missing").string(), dir.path() / "o2", {}), Error);
  PackReport r = pack_dataset("synthetic:120:1x4x4", dir.path() / "syn", {});
  EXPECT_EQ(r.manifest.split("train").records, 120);
  EXPECT_EQ(r.manifest.split("test").records, 12);
}

}  // namespace
}  // namespace gpuml::data

namespace gpuml::data {
namespace {

// A header claims the size; the pixels are allocated only for a size worth decoding (fuzzing
// found a 150-byte JPEG that made gpuml allocate 4 GB first).
TEST(ImageCodec, HeadersClaimingHugeImagesAreRefusedBeforeAllocating) {
  // A test executable moved away from the source tree (the GPU bundle) has no regression inputs.
  if (!std::filesystem::is_directory(GPUML_FUZZ_DIR)) GTEST_SKIP() << GPUML_FUZZ_DIR << " is not here (no source tree)";
  for (const char* name : {"jpeg_claims_63023x63479", "png_claims_60000x60000"}) {
    const std::filesystem::path regression = std::filesystem::path(GPUML_FUZZ_DIR) / "regressions" / "image" / name;
    std::ifstream in(regression, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    ASSERT_GT(bytes.size(), 1u) << regression;
    testing::TempDir dir;
    const std::filesystem::path image = dir.path() / "huge.img";
    std::ofstream(image, std::ios::binary) << bytes.substr(1);  // the first byte is the fuzzer's option
    try {
      decode_image_file(image.string());
      FAIL() << name << " was decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is larger than gpuml decodes (256 MiB); resize it first"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace gpuml::data
