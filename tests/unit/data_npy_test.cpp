// NPY/NPZ readers and the NPY writer: hand-built v1/v2/v3 files, big-endian, Fortran order,
// bool, refused object dtype, malformed headers, truncated data; NPZ archives written here
// with libzip (stored and deflated), path-traversal names refused.
#include <gtest/gtest.h>
#include <zip.h>

#include <cstring>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/npy.h"
#include "data/npz.h"
#include "data_test_fixture.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;

class DataNpyTest : public testing::SeededDirTest {};

// An NPY file of `version` with the dict literal padded like NumPy does.
std::string npy_bytes(int version, const std::string& dict, const std::string& payload) {
  std::string header = dict;
  size_t len_bytes = version == 1 ? 2 : 4;
  size_t unpadded = 8 + len_bytes + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  for (size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + payload;
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values, bool big_endian) {
  std::string out;
  for (const T& v : values) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    if (big_endian) std::reverse(b, b + sizeof(T));
    out.append(b, sizeof(T));
  }
  return out;
}

template <typename Fn>
void expect_error(ErrorKind kind, Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& f : fragments) EXPECT_NE(e.message().find(f), std::string::npos) << e.message();
  }
}

TEST_F(DataNpyTest, ReadsVersionsOneTwoThreeLittleAndBigEndian) {
  std::vector<float> values(6);
  for (float& v : values) v = std::uniform_real_distribution<float>(-3, 3)(rng_);
  for (int version : {1, 2, 3}) {
    for (bool big : {false, true}) {
      std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': (2, 3), }}",
                                     big ? ">f4" : "<f4");
      Tensor t = read_npy(write("a.npy", npy_bytes(version, dict, raw_bytes(values, big))));
      ASSERT_EQ(t.dtype(), DType::f32);
      ASSERT_EQ(t.shape(), (Shape{2, 3}));
      for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], values[i]) << "v" << version << " big " << big;
    }
  }
}

TEST_F(DataNpyTest, IntegerWidthsWidenAndBigEndianSwaps) {
  std::vector<int16_t> i2 = {static_cast<int16_t>(rng_()), -7, 300};
  std::vector<uint16_t> u2 = {static_cast<uint16_t>(rng_()), 65535, 1};
  std::vector<int64_t> i8 = {static_cast<int64_t>(rng_()) << 20, -5, 42};
  std::vector<uint32_t> u4 = {static_cast<uint32_t>(rng_()), 4000000000u, 0};
  std::vector<double> f8 = {std::uniform_real_distribution<double>(-1, 1)(rng_), 1e300, -0.5};
  auto dict = [](const char* d) { return fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': (3,)}}", d); };
  Tensor t_i2 = read_npy(write("i2.npy", npy_bytes(1, dict(">i2"), raw_bytes(i2, true))));
  Tensor t_u2 = read_npy(write("u2.npy", npy_bytes(1, dict("<u2"), raw_bytes(u2, false))));
  Tensor t_i8 = read_npy(write("i8.npy", npy_bytes(1, dict(">i8"), raw_bytes(i8, true))));
  Tensor t_u4 = read_npy(write("u4.npy", npy_bytes(1, dict("<u4"), raw_bytes(u4, false))));
  Tensor t_f8 = read_npy(write("f8.npy", npy_bytes(1, dict(">f8"), raw_bytes(f8, true))));
  EXPECT_EQ(t_i2.dtype(), DType::i32);
  EXPECT_EQ(t_u2.dtype(), DType::i32);
  EXPECT_EQ(t_i8.dtype(), DType::i64);
  EXPECT_EQ(t_u4.dtype(), DType::i64);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(t_i2.data<int32_t>()[i], i2[i]);
    EXPECT_EQ(t_u2.data<int32_t>()[i], u2[i]);
    EXPECT_EQ(t_i8.data<int64_t>()[i], i8[i]);
    EXPECT_EQ(t_u4.data<int64_t>()[i], static_cast<int64_t>(u4[i]));
    EXPECT_EQ(t_f8.data<double>()[i], f8[i]);
  }
  std::vector<uint64_t> too_big = {1, uint64_t{1} << 63, 2};
  expect_error(ErrorKind::Io, [&] { read_npy(write("u8.npy", npy_bytes(1, dict("<u8"), raw_bytes(too_big, false)))); },
               {"u8.npy", "element 1", "does not fit"});
}

TEST_F(DataNpyTest, FortranOrderIsTransposedToCOrder) {
  // A (2, 3, 4) array stored column-major: element (i, j, k) at i + 2*j + 6*k.
  std::vector<int32_t> stored(24);
  std::vector<int32_t> logical(24);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        int32_t v = static_cast<int32_t>(rng_() % 1000);
        stored[i + 2 * j + 6 * k] = v;
        logical[(i * 3 + j) * 4 + k] = v;
      }
  Tensor t = read_npy(write("f.npy", npy_bytes(1, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }",
                                               raw_bytes(stored, false))));
  ASSERT_EQ(t.shape(), (Shape{2, 3, 4}));
  ASSERT_TRUE(t.is_contiguous());
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.data<int32_t>()[i], logical[i]) << i;
}

TEST_F(DataNpyTest, BoolU8AndScalarAndEmpty) {
  std::string bools = {1, 0, 0, 1};
  Tensor b = read_npy(write("b.npy", npy_bytes(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }", bools)));
  EXPECT_EQ(b.dtype(), DType::boolean);
  EXPECT_EQ(b.to_doubles(), (std::vector<double>{1, 0, 0, 1}));
  Tensor u = read_npy(write("u.npy", npy_bytes(1, "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (3,)}", "\x05\xff\x07")));
  EXPECT_EQ(u.dtype(), DType::u8);
  EXPECT_EQ(u.to_doubles(), (std::vector<double>{5, 255, 7}));
  Tensor s = read_npy(write("s.npy", npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw_bytes(std::vector<double>{2.5}, false))));
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.item_as_double(0), 2.5);
  Tensor e = read_npy(write("e.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", "")));
  EXPECT_EQ(e.shape(), (Shape{0, 5}));
}

TEST_F(DataNpyTest, RefusesObjectArraysAndMalformedHeaders) {
  std::string pickle = "\x80\x02]q\x00.";  // a pickle stream; it must never be looked at
  expect_error(ErrorKind::Unsupported,
               [&] { read_npy(write("o.npy", npy_bytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", pickle))); },
               {"o.npy", "object", "never unpickles"});
  expect_error(ErrorKind::Unsupported,
               [&] { read_npy(write("st.npy", npy_bytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "abcd"))); },
               {"st.npy", "structured"});
  expect_error(ErrorKind::Unsupported,
               [&] { read_npy(write("c.npy", npy_bytes(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "12345678"))); },
               {"c.npy", "'<c8' is not supported"});
  const std::string payload4 = "abcd";
  struct Bad {
    std::string dict;
    std::string fragment;
  };
  std::vector<Bad> bad = {
      {"{'descr': '<f4', 'fortran_order': False}", "needs 'descr', 'fortran_order' and 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unexpected key 'extra'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "'descr' repeated"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "expected True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1)}", "trailing comma"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", "unexpected text after the dict"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "expected '}'"},
      {"{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}", "expected ':'"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", "at byte 17"},
      {"['descr', '<f4']", "expected '{'"},
      {"{'descr': 'f4', 'fortran_order': False, 'shape': (1,)}", "byte order"},
      {"{'descr': '|f4', 'fortran_order': False, 'shape': (1,)}", "no byte order"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "too large"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.dict);
    expect_error(ErrorKind::Io, [&] { read_npy(write("bad.npy", npy_bytes(1, b.dict, payload4))); }, {"bad.npy", b.fragment});
  }
  std::string good = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "abcdefgh");
  std::string bad_magic = good;
  bad_magic[1] = 'X';
  expect_error(ErrorKind::Io, [&] { read_npy(write("m.npy", bad_magic)); }, {"m.npy", "bad magic"});
  std::string bad_version = good;
  bad_version[6] = 4;
  expect_error(ErrorKind::Io, [&] { read_npy(write("v.npy", bad_version)); }, {"v.npy", "version 4.0"});
  std::string long_header = good;
  long_header[8] = '\xff';
  long_header[9] = '\x7f';
  expect_error(ErrorKind::Io, [&] { read_npy(write("h.npy", long_header)); }, {"h.npy", "header length 32767"});
  expect_error(ErrorKind::Io, [&] { read_npy(write("t.npy", good.substr(0, good.size() - 1))); },
               {"t.npy", "truncated NPY data", "needs 8 bytes"});
  expect_error(ErrorKind::Io, [&] { read_npy(write("g.npy", good + "x")); }, {"g.npy", "trailing"});
  expect_error(ErrorKind::Io, [&] { read_npy(write("z.npy", "")); }, {"z.npy", "truncated NPY preamble"});
  std::string huge = npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", "");
  expect_error(ErrorKind::Io, [&] { read_npy(write("huge.npy", huge)); }, {"huge.npy", "truncated"});
}

TEST_F(DataNpyTest, WriterRoundTripsEveryNumpyDtypeAtomically) {
  for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    std::vector<double> values(12);
    for (double& v : values) v = dtype == DType::boolean ? rng_() % 2 : static_cast<double>(rng_() % 200);
    Tensor t = Tensor::from_values({3, 4}, values, dtype);
    std::string path = (dir_ / "out.npy").string();
    write_npy(path, t.transpose(0, 1));  // non-contiguous: written in logical order
    Tensor back = read_npy(path);
    EXPECT_EQ(back.dtype(), dtype);
    EXPECT_EQ(back.shape(), (Shape{4, 3}));
    EXPECT_EQ(back.to_doubles(), t.transpose(0, 1).to_doubles()) << dtype_name(dtype);
    EXPECT_EQ(fs::file_size(path) % 64, (back.nbytes()) % 64);  // header padded to 64 bytes
  }
  Tensor b = Tensor::from_values({2}, {1, 2}, DType::bf16);
  std::string path = (dir_ / "bf.npy").string();
  expect_error(ErrorKind::Unsupported, [&] { write_npy(path, b); }, {"bfloat16"});
  EXPECT_FALSE(fs::exists(path));
  for (const auto& entry : fs::directory_iterator(dir_))  // no temporary left behind
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}

// Writes a zip of (name, bytes, deflate?) members with libzip.
void write_zip(const std::string& path, const std::vector<std::tuple<std::string, std::string, bool>>& members) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  for (const auto& [name, bytes, deflate] : members) {
    zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
    zip_int64_t index = zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE);
    ASSERT_GE(index, 0);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(index), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

TEST_F(DataNpyTest, NpzStoredAndDeflatedMembers) {
  std::vector<float> x(4 * 5);
  for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng_);
  std::vector<int64_t> y = {static_cast<int64_t>(rng_() % 10), 3, 7, 1};
  std::string x_npy = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 5), }", raw_bytes(x, false));
  std::string y_npy = npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", raw_bytes(y, false));
  for (bool deflate : {false, true}) {
    std::string path = (dir_ / "d.npz").string();
    write_zip(path, {{"x.npy", x_npy, deflate}, {"y.npy", y_npy, deflate}, {"README", "hello", deflate}});
    NpzReader npz(path);
    EXPECT_EQ(npz.names(), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(npz.members().size(), 3u);
    EXPECT_TRUE(npz.contains("x.npy"));
    Tensor tx = npz.read("x");
    Tensor ty = npz.read("y.npy");
    ASSERT_EQ(tx.shape(), (Shape{4, 5}));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(tx.data<float>()[i], x[i]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(ty.data<int64_t>()[i], y[i]);
    expect_error(ErrorKind::Io, [&] { npz.read("z"); }, {"d.npz", "no array 'z'", "x, y"});
  }
}

TEST_F(DataNpyTest, NpzRefusesTraversalNamesBadMembersAndNonZips) {
  std::string ok = npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", "\x01");
  for (std::string name : {"../evil.npy", "/abs.npy", "a/../../b.npy", "dir\\x.npy"}) {
    std::string path = (dir_ / "t.npz").string();
    write_zip(path, {{name, ok, false}});
    expect_error(ErrorKind::Io, [&] { NpzReader npz(path); }, {"t.npz", name, "escape"});
  }
  std::string path = (dir_ / "o.npz").string();
  write_zip(path, {{"o.npy", npy_bytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "\x80\x02N."), true},
                   {"t.npy", ok.substr(0, ok.size() - 1), true}});
  NpzReader npz(path);
  expect_error(ErrorKind::Unsupported, [&] { npz.read("o"); }, {"o.npz:o.npy", "object"});
  expect_error(ErrorKind::Io, [&] { npz.read("t"); }, {"o.npz:t.npy", "truncated"});
  expect_error(ErrorKind::Io, [&] { NpzReader bad(write("not.npz", "this is not a zip file at all")); },
               {"not.npz", "cannot open as an NPZ"});
}

}  // namespace
}  // namespace gpuml::data
