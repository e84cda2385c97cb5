// IDX reader: tiny files written here (plain and gzip) read back, every malformed case rejected
// with a message naming the problem, and the real Fashion-MNIST files when the machine has them.
#include <gtest/gtest.h>
#include <zlib.h>


#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/idx.h"
#include "data/idx_dataset.h"
#include "data_test_fixture.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

class DataIdxTest : public testing::SeededDirTest {
 protected:
  using SeededDirTest::write;
  std::string write(const std::string& name, const Bytes& bytes) {
    return write(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  std::string write_gz(const std::string& name, const Bytes& bytes) {
    std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
    return path;
  }
};

Bytes idx_header(uint8_t type, const std::vector<uint32_t>& dims) {
  Bytes b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  return b;
}

void append_be(Bytes& b, uint64_t v, int bytes) {
  for (int s = 8 * (bytes - 1); s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

// Expects an Io error whose message contains every fragment.
template <typename Fn>
void expect_io_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
    for (const std::string& f : fragments) EXPECT_NE(e.message().find(f), std::string::npos) << e.message();
  }
}

TEST_F(DataIdxTest, ReadsU8PlainAndGzip) {
  std::mt19937& rng = rng_;
  Bytes file = idx_header(0x08, {3, 4, 5});
  Bytes values(60);
  for (uint8_t& v : values) v = static_cast<uint8_t>(rng());
  file.insert(file.end(), values.begin(), values.end());
  for (const std::string& path : {write("a-idx3-ubyte", file), write_gz("b-idx3-ubyte.gz", file),
                                  write_gz("gzip-without-suffix", file)}) {
    Tensor t = read_idx(path);
    EXPECT_EQ(t.dtype(), DType::u8);
    EXPECT_EQ(t.shape(), (Shape{3, 4, 5}));
    for (int i = 0; i < 60; ++i) EXPECT_EQ(t.data<uint8_t>()[i], values[i]) << path << " at " << i;
  }
}

TEST_F(DataIdxTest, ConvertsWiderTypesFromBigEndian) {
  std::mt19937& rng = rng_;
  std::vector<int32_t> i8v, i16v, i32v;
  std::vector<float> f32v;
  std::vector<double> f64v;
  Bytes i8 = idx_header(0x09, {5}), i16 = idx_header(0x0B, {5}), i32 = idx_header(0x0C, {5});
  Bytes f32 = idx_header(0x0D, {5}), f64 = idx_header(0x0E, {5});
  for (int i = 0; i < 5; ++i) {
    i8v.push_back(static_cast<int8_t>(rng()));
    append_be(i8, static_cast<uint8_t>(i8v.back()), 1);
    i16v.push_back(static_cast<int16_t>(rng()));
    append_be(i16, static_cast<uint16_t>(i16v.back()), 2);
    i32v.push_back(static_cast<int32_t>(rng()));
    append_be(i32, static_cast<uint32_t>(i32v.back()), 4);
    f32v.push_back(std::uniform_real_distribution<float>(-5, 5)(rng));
    uint32_t fb;
    std::memcpy(&fb, &f32v.back(), 4);
    append_be(f32, fb, 4);
    f64v.push_back(std::uniform_real_distribution<double>(-5, 5)(rng));
    uint64_t db;
    std::memcpy(&db, &f64v.back(), 8);
    append_be(f64, db, 8);
  }
  Tensor t8 = read_idx(write("i8", i8)), t16 = read_idx(write("i16", i16)), t32 = read_idx(write("i32", i32));
  Tensor tf = read_idx(write("f32", f32)), td = read_idx(write_gz("f64", f64));
  EXPECT_EQ(t8.dtype(), DType::i32);
  EXPECT_EQ(t16.dtype(), DType::i32);
  EXPECT_EQ(tf.dtype(), DType::f32);
  EXPECT_EQ(td.dtype(), DType::f64);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(t8.data<int32_t>()[i], i8v[i]);
    EXPECT_EQ(t16.data<int32_t>()[i], i16v[i]);
    EXPECT_EQ(t32.data<int32_t>()[i], i32v[i]);
    EXPECT_EQ(tf.data<float>()[i], f32v[i]);
    EXPECT_EQ(td.data<double>()[i], f64v[i]);
  }
}

TEST_F(DataIdxTest, RejectsMalformedFiles) {
  Bytes good = idx_header(0x08, {2, 3});
  for (int i = 0; i < 6; ++i) good.push_back(static_cast<uint8_t>(i + 1));

  Bytes bad_magic = good;
  bad_magic[0] = 0x12;
  expect_io_error([&] { read_idx(write("bad_magic", bad_magic)); }, {"bad_magic", "magic"});
  Bytes bad_type = good;
  bad_type[2] = 0x07;
  expect_io_error([&] { read_idx(write("bad_type", bad_type)); }, {"bad_type", "element type 0x07"});
  Bytes zero_dims = {0, 0, 8, 0};
  expect_io_error([&] { read_idx(write("zero_dims", zero_dims)); }, {"zero_dims", "0 dims"});
  Bytes many_dims = idx_header(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1});
  expect_io_error([&] { read_idx(write("many_dims", many_dims)); }, {"many_dims", "9 dims"});
  Bytes overflow = idx_header(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF});
  expect_io_error([&] { read_idx(write("overflow", overflow)); }, {"overflow", "overflow"});
  Bytes too_big = idx_header(0x0E, {60000, 28, 28});
  expect_io_error([&] { read_idx(write("too_big", too_big)); }, {"too_big", "truncated"});
  expect_io_error([&] { read_idx(write_gz("too_big.gz", too_big)); }, {"too_big.gz", "gzip file can hold"});
  Bytes short_dims = {0, 0, 8, 3, 0, 0, 0, 2};
  expect_io_error([&] { read_idx(write("short_dims", short_dims)); }, {"short_dims", "truncated IDX dimensions"});
  Bytes truncated(good.begin(), good.end() - 1);
  expect_io_error([&] { read_idx(write("truncated", truncated)); }, {"truncated", "need 6 bytes"});
  expect_io_error([&] { read_idx(write_gz("truncated.gz", truncated)); }, {"truncated.gz", "truncated IDX data"});
  Bytes trailing = good;
  trailing.push_back(9);
  expect_io_error([&] { read_idx(write("trailing", trailing)); }, {"trailing", "trailing garbage"});
  expect_io_error([&] { read_idx(write_gz("trailing.gz", trailing)); }, {"trailing.gz", "trailing garbage"});
  expect_io_error([&] { read_idx(write("empty", Bytes{})); }, {"empty", "truncated IDX header"});
  expect_io_error([&] { read_idx((dir_ / "absent").string()); }, {"absent", "cannot open"});
}

TEST_F(DataIdxTest, DatasetDirListsMissingFiles) {
  Bytes images = idx_header(0x08, {2, 2, 2});
  for (int i = 0; i < 8; ++i) images.push_back(static_cast<uint8_t>(i * 7));
  Bytes labels = idx_header(0x08, {2});
  labels.push_back(3);
  labels.push_back(9);
  write("train-images-idx3-ubyte", images);
  write_gz("train-labels-idx1-ubyte.gz", labels);
  expect_io_error([&] { load_idx_dataset(dir_.string()); },
                  {"missing 2", "t10k-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]"});
  write_gz("t10k-images-idx3-ubyte.gz", images);
  write("t10k-labels-idx1-ubyte", labels);
  IdxDataset ds = load_idx_dataset(dir_.string());
  EXPECT_EQ(ds.train_x.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(ds.test_y.data<uint8_t>()[1], 9);
}

TEST(DataIdxRealData, FashionMnistShapesAndLabels) {
  // The whole dataset, so the Debian package's folder (the GPU bundle carries only a subset).
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << dir << " is not on this machine";
  IdxDataset ds = load_idx_dataset(dir);
  EXPECT_EQ(ds.train_x.shape(), (Shape{60000, 28, 28}));
  EXPECT_EQ(ds.train_y.shape(), (Shape{60000}));
  EXPECT_EQ(ds.test_x.shape(), (Shape{10000, 28, 28}));
  EXPECT_EQ(ds.test_y.shape(), (Shape{10000}));
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < 60000; ++i) {
    uint8_t y = ds.train_y.data<uint8_t>()[i];
    ASSERT_LT(y, 10) << "label " << i;
    ++counts[y];
  }
  for (int64_t c : counts) EXPECT_EQ(c, 6000);  // Fashion-MNIST is balanced
  for (int64_t i = 0; i < 10000; ++i) ASSERT_LT(ds.test_y.data<uint8_t>()[i], 10);
}

}  // namespace
}  // namespace gpuml::data
