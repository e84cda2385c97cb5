#include "io/tensorboard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "core/error.h"
#include "core/atomic_file.h"
#include "io/proto_writer.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;

// ---- an independent reader: TFRecord framing + the protobuf wire format --------------------

uint32_t crc32c_bitwise(std::string_view s) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  crc = ~crc;
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t read_le(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_LE(at + 12, file.size()) << "truncated frame header";
    uint64_t length = read_le(file, at, 8);
    EXPECT_EQ(read_le(file, at + 8, 4), crc32c_bitwise(std::string_view(file).substr(at, 8)))
        << "length crc";
    EXPECT_LE(at + 12 + length + 4, file.size()) << "truncated record";
    std::string data = file.substr(at + 12, length);
    EXPECT_EQ(read_le(file, at + 12 + length, 4), crc32c_bitwise(data)) << "data crc";
    records.push_back(data);
    at += 12 + length + 4;
  }
  return records;
}

// One decoded field: varints and fixed-width values as raw bits, length-delimited as bytes.
struct Field {
  uint32_t wire_type;
  uint64_t number;
  std::string bytes;
};

std::multimap<uint32_t, Field> parse_message(std::string_view m) {
  std::multimap<uint32_t, Field> fields;
  size_t at = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; at < m.size(); shift += 7) {
      uint8_t b = static_cast<uint8_t>(m[at++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    ADD_FAILURE() << "varint runs past the message";
    return v;
  };
  while (at < m.size()) {
    uint64_t key = varint();
    Field f{static_cast<uint32_t>(key & 7), 0, {}};
    switch (f.wire_type) {
      case 0:
        f.number = varint();
        break;
      case 1:
        f.number = read_le(m, at, 8);
        at += 8;
        break;
      case 5:
        f.number = read_le(m, at, 4);
        at += 4;
        break;
      case 2: {
        uint64_t n = varint();
        f.bytes = std::string(m.substr(at, n));
        at += n;
        break;
      }
      default:
        ADD_FAILURE() << "unexpected wire type " << f.wire_type;
        return fields;
    }
    fields.emplace(static_cast<uint32_t>(key >> 3), f);
  }
  EXPECT_EQ(at, m.size());
  return fields;
}

double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
float as_float(uint64_t bits) {
  uint32_t b = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- tests ----------------------------------------------------------------------------------

TEST(IoProtoWriter, KnownEncodings) {
  ProtoWriter w;
  w.add_varint(1, 300);        // 08 ac 02 (the protobuf docs' example)
  w.add_string(2, "testing");  // 12 07 "testing"
  w.add_int64(3, -1);          // 18 + ten bytes: negative int64 is a 10-byte varint
  w.add_float(4, 1.0f);        // 25 00 00 80 3f
  w.add_double(5, -2.0);       // 29 + 8 bytes
  std::string expected("\x08\xac\x02\x12\x07testing\x18", 13);
  expected += std::string(9, '\xff') + "\x01";
  expected += std::string("\x25\x00\x00\x80\x3f", 5);
  expected += std::string("\x29\x00\x00\x00\x00\x00\x00\x00\xc0", 9);
  EXPECT_EQ(w.bytes(), expected);
}

TEST(IoTensorBoard, FileNameAndFirstEvent) {
  TempDir dir;
  const double before = unix_now();
  TensorBoardWriter tb(dir.path() / "run1");
  const double after = unix_now();
  const std::string name = tb.path().filename();
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_EQ(name.substr(name.size() - std::strlen(host)), host) << name;
  EXPECT_EQ(tb.path().parent_path(), dir.path() / "run1");

  std::vector<std::string> records = read_records(read_file_bytes(tb.path()));
  ASSERT_EQ(records.size(), 1u);
  auto event = parse_message(records[0]);
  ASSERT_EQ(event.count(1), 1u);
  EXPECT_EQ(event.find(1)->second.wire_type, 1u);
  double wall_time = as_double(event.find(1)->second.number);
  EXPECT_GE(wall_time, before - 1e-3);
  EXPECT_LE(wall_time, after + 1e-3);
  ASSERT_EQ(event.count(3), 1u);
  EXPECT_EQ(event.find(3)->second.bytes, "brain.Event:2");
  // The unix time in the name is the first event's.
  EXPECT_NE(name.find(fmt::format(".{}.", static_cast<int64_t>(wall_time))), std::string::npos)
      << name;
}

TEST(IoTensorBoard, ScalarsDecodeBackAndAreVisibleWithoutClosing) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<double> normal(1.0, 5.0);
  struct Scalar {
    std::string tag;
    int64_t step;
    double value;
  };
  std::vector<Scalar> written;
  for (int64_t step = 0; step < 12; ++step) {
    written.push_back({"loss/train", step * 100, normal(rng)});
    written.push_back({"accuracy/test ünï", step * 100 + 7, normal(rng)});
  }
  written.push_back({"big_step", int64_t{1} << 40, std::nan("")});

  TempDir dir;
  TensorBoardWriter tb(dir.path());
  for (const auto& s : written) tb.add_scalar(s.tag, s.step, s.value);
  // Read while the writer is still open: every scalar must already be in the file.
  std::vector<std::string> records = read_records(read_file_bytes(tb.path()));
  ASSERT_EQ(records.size(), written.size() + 1);
  for (size_t i = 0; i < written.size(); ++i) {
    SCOPED_TRACE(i);
    auto event = parse_message(records[i + 1]);
    ASSERT_EQ(event.count(1), 1u);
    EXPECT_GT(as_double(event.find(1)->second.number), 1.6e9);  // a plausible unix time
    ASSERT_EQ(event.count(2), 1u);
    EXPECT_EQ(event.find(2)->second.wire_type, 0u);
    EXPECT_EQ(static_cast<int64_t>(event.find(2)->second.number), written[i].step);
    ASSERT_EQ(event.count(5), 1u);
    auto summary = parse_message(event.find(5)->second.bytes);
    ASSERT_EQ(summary.count(1), 1u);
    auto value = parse_message(summary.find(1)->second.bytes);
    ASSERT_EQ(value.count(1), 1u);
    EXPECT_EQ(value.find(1)->second.bytes, written[i].tag);
    ASSERT_EQ(value.count(2), 1u);
    EXPECT_EQ(value.find(2)->second.wire_type, 5u);
    const float got = as_float(value.find(2)->second.number);
    if (std::isnan(written[i].value))
      EXPECT_TRUE(std::isnan(got));
    else
      EXPECT_EQ(got, static_cast<float>(written[i].value));
  }
  tb.sync();
}

TEST(IoTensorBoard, TwoWritersInOneSecondGetDistinctFiles) {
  TempDir dir;
  TensorBoardWriter a(dir.path());
  TensorBoardWriter b(dir.path());
  EXPECT_NE(a.path(), b.path());
  a.add_scalar("x", 1, 2.0);
  EXPECT_EQ(read_records(read_file_bytes(a.path())).size(), 2u);
  EXPECT_EQ(read_records(read_file_bytes(b.path())).size(), 1u);
}

TEST(IoTensorBoard, UnwritableDirectoryIsAnIoError) {
  TempDir dir;
  write_file_atomically(dir.path() / "a_file", "x");
  try {
    TensorBoardWriter tb(dir.path() / "a_file" / "logs");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.message().find("a_file"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace gpuml
