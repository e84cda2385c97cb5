// The shard format: checksums, writer/reader round trip, manifest validation, damaged shards.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/shard_checksum.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "io/crc32c.h"
#include "data_test_fixture.h"
#include "io_temp_dir.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::random_bytes;

// Records of x u8 (2, 3) and y i64 (): random pixels, labels 0..4.
std::vector<uint8_t> make_records(int64_t n, uint32_t seed) {
  std::vector<uint8_t> records = random_bytes(static_cast<size_t>(n) * 14, seed);
  for (int64_t r = 0; r < n; ++r) {
    int64_t label = records[static_cast<size_t>(r) * 14] % 5;
    std::memcpy(&records[static_cast<size_t>(r) * 14 + 6], &label, 8);
  }
  return records;
}

const std::vector<ShardField> kFields = {{"x", DType::u8, {2, 3}}, {"y", DType::i64, {}}};

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(ShardChecksum, MatchesTheReferenceCrc32cOnOddSizesAndOffsets) {
  std::vector<uint8_t> data = random_bytes(4099, 7);
  for (size_t offset : {0, 1, 3, 7})
    for (size_t size : {0, 1, 7, 8, 9, 63, 1000, 4000}) {
      EXPECT_EQ(shard_crc32c(data.data() + offset, size), crc32c(data.data() + offset, size)) << offset << " " << size;
      uint32_t split = shard_crc32c(data.data() + offset + size / 3, size - size / 3,
                                    shard_crc32c(data.data() + offset, size / 3));
      EXPECT_EQ(split, crc32c(data.data() + offset, size));
    }
  EXPECT_EQ(shard_crc32c("123456789", 9), 0xE3069283u);
}

TEST(ShardWriter, RoundTripAcrossShardsAndSplits) {
  TempDir dir;
  std::vector<uint8_t> train = make_records(1000, 1), test = make_records(37, 2);
  {
    ShardWriter w(dir.path() / "ds", kFields, 14 * 100 + 5);  // 100 records per shard
    w.begin_split("train");
    w.write_records(train.data(), 999);
    w.write_records(train.data() + 999 * 14, 1);
    w.begin_split("test");
    w.write_records(test.data(), 37);
    ShardManifest m = w.finish();
    EXPECT_EQ(m.split("train").shards.size(), 10u);
  }
  ShardDataset ds(dir.path() / "ds");
  const ShardManifest& m = ds.manifest();
  EXPECT_EQ(m.record_bytes(), 14u);
  EXPECT_EQ(m.split("train").records, 1000);
  EXPECT_EQ(m.split("test").records, 37);
  EXPECT_EQ(m.field_offset("y"), 6u);
  int64_t max_label = 0;
  for (int64_t r = 0; r < 1000; ++r) max_label = std::max<int64_t>(max_label, train[static_cast<size_t>(r) * 14] % 5);
  EXPECT_EQ(m.num_classes, max_label + 1);
  std::vector<uint8_t> all, buffer;
  for (size_t s = 0; s < m.split("train").shards.size(); ++s) {
    ds.read_shard(m.split("train"), s, buffer);
    all.insert(all.end(), buffer.begin(), buffer.end());
  }
  EXPECT_EQ(all, train);
  InMemoryDataset t = ds.load_split("test");
  ASSERT_EQ(t.features().shape(), (Shape{37, 2, 3}));
  for (int64_t r = 0; r < 37; ++r) {
    EXPECT_EQ(0, std::memcmp(static_cast<uint8_t*>(t.features().raw_data()) + r * 6, &test[static_cast<size_t>(r) * 14], 6));
    EXPECT_EQ(t.labels().data<int64_t>()[r], test[static_cast<size_t>(r) * 14] % 5);
  }
  EXPECT_TRUE(verify_shard_dataset(dir.path() / "ds").empty());
  EXPECT_NE(describe_shard_dataset(dir.path() / "ds").find("split train: 1000 records in 10 shards"), std::string::npos);
}

TEST(ShardWriter, NoManifestUntilFinishAndAnOldOneIsRemovedFirst) {
  TempDir dir;
  std::vector<uint8_t> records = make_records(50, 3);
  {
    ShardWriter w(dir.path(), kFields, 14 * 10);
    w.begin_split("train");
    w.write_records(records.data(), 50);
    w.finish();
  }
  ASSERT_TRUE(is_shard_dataset(dir.path()));
  {
    // An interrupted re-pack: the old manifest must not survive to describe new, partial shards.
    ShardWriter w(dir.path(), kFields, 14 * 10);
    w.begin_split("train");
    w.write_records(records.data(), 25);
  }
  EXPECT_FALSE(is_shard_dataset(dir.path()));
  EXPECT_NE(error_of([&] { ShardDataset ds(dir.path()); }).find("no manifest.json"), std::string::npos);
  // A directory holding anything else is refused rather than overwritten.
  std::ofstream(dir.path() / "notes.txt") << "mine";
  EXPECT_NE(error_of([&] { ShardWriter w(dir.path(), kFields, 1000); }).find("notes.txt"), std::string::npos);
}

class DamagedShard : public ::testing::Test {
 protected:
  void SetUp() override {
    ShardWriter w(dir_.path(), kFields, 14 * 40);
    w.begin_split("train");
    std::vector<uint8_t> records = make_records(100, 4);
    w.write_records(records.data(), 100);
    w.finish();
  }
  fs::path shard(int i) const { return dir_.path() / fmt::format("train-{:05d}.shard", i); }
  TempDir dir_;
};

TEST_F(DamagedShard, AFlippedByteIsRefusedNamingTheShard) {
  std::string bytes = read_file_bytes(shard(1));
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
  write_file_atomically(shard(1), bytes);
  ShardDataset ds(dir_.path());  // sizes still match: checksums are checked on read
  std::vector<uint8_t> buffer;
  EXPECT_NO_THROW(ds.read_shard(ds.manifest().split("train"), 0, buffer));
  std::string message = error_of([&] { ds.read_shard(ds.manifest().split("train"), 1, buffer); });
  EXPECT_NE(message.find("train-00001.shard: damaged shard: CRC-32C"), std::string::npos) << message;
  std::vector<ShardProblem> problems = verify_shard_dataset(dir_.path());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, "train-00001.shard");
}

TEST_F(DamagedShard, ATruncatedOrMissingShardIsRefusedWhenOpening) {
  fs::resize_file(shard(2), 14 * 5);
  std::string message = error_of([&] { ShardDataset ds(dir_.path()); });
  EXPECT_NE(message.find("train-00002.shard: damaged shard: 70 bytes on disk, the manifest says 280"), std::string::npos)
      << message;
  fs::remove(shard(0));
  EXPECT_EQ(verify_shard_dataset(dir_.path()).size(), 2u);
}

TEST_F(DamagedShard, ATruncatedManifestIsRefusedClearly) {
  std::string text = read_file_bytes(dir_.path() / kShardManifestName);
  write_file_atomically(dir_.path() / kShardManifestName, text.substr(0, text.size() / 2));
  std::string message = error_of([&] { ShardDataset ds(dir_.path()); });
  EXPECT_NE(message.find("manifest.json: not valid JSON (truncated or damaged?)"), std::string::npos) << message;
  std::vector<ShardProblem> problems = verify_shard_dataset(dir_.path());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, "manifest.json");
}

TEST(ShardManifest, ErrorsNameTheFieldOrShard) {
  auto manifest = [](const std::string& fields, const std::string& shards) {
    return R"({"format": "gpuml-shards", "version": 1, "fields": )" + fields +
           R"(, "splits": [{"name": "train", "records": 2, "shards": )" + shards + "}]}";
  };
  const std::string good_fields = R"([{"name": "x", "dtype": "u8", "shape": [3]}, {"name": "y", "dtype": "i64", "shape": []}])";
  const std::string good_shards = R"([{"file": "a.shard", "records": 2, "bytes": 22, "crc32c": "0000abcd"}])";
  EXPECT_NO_THROW(parse_shard_manifest(manifest(good_fields, good_shards), "m"));
  auto error = [&](const std::string& fields, const std::string& shards) {
    return error_of([&] { parse_shard_manifest(manifest(fields, shards), "m.json"); });
  };
  EXPECT_NE(error(R"([{"name": "x", "dtype": "u9", "shape": [3]}])", good_shards).find("fields[0] (x): unknown dtype 'u9'"),
            std::string::npos);
  EXPECT_NE(error(R"([{"name": "x", "dtype": "u8", "shape": [0]}])", good_shards).find("fields[0] (x): bad shape"),
            std::string::npos);
  EXPECT_NE(error(R"([{"name": "x", "shape": [3]}])", good_shards).find("fields[0] (x): missing \"dtype\""),
            std::string::npos);
  EXPECT_NE(error(good_fields, R"([{"file": "a.shard", "records": 2, "bytes": 23, "crc32c": "0000abcd"}])")
                .find("shards[0] (a.shard): 23 bytes, but 2 records of 11 bytes need 22"),
            std::string::npos);
  EXPECT_NE(error(good_fields, R"([{"file": "../a.shard", "records": 2, "bytes": 22, "crc32c": "0000abcd"}])")
                .find("plain file name"),
            std::string::npos);
  EXPECT_NE(error(good_fields, R"([{"file": "a.shard", "records": 2, "bytes": 22, "crc32c": "xyz"}])").find("crc32c 'xyz'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_shard_manifest(R"({"format": "gpuml-shards", "version": 2})", "m"); }).find("version 2"),
            std::string::npos);
}

TEST(ShardFormat, ByteSizes) {
  EXPECT_EQ(parse_byte_size("4096", "s"), 4096u);
  EXPECT_EQ(parse_byte_size("512K", "s"), 512u * 1024);
  EXPECT_EQ(parse_byte_size("64M", "s"), 64u << 20);
  EXPECT_EQ(parse_byte_size("1.5GiB", "s"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("2gb", "s"), 2ull << 30);
  EXPECT_THROW(parse_byte_size("12Q", "s"), Error);
  EXPECT_THROW(parse_byte_size("M", "s"), Error);
  EXPECT_THROW(parse_byte_size("0", "s"), Error);
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
}

}  // namespace
}  // namespace gpuml::data
