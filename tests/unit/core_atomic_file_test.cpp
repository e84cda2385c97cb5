#include "core/atomic_file.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

#include "core/error.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;

std::string random_bytes(size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(IoAtomicFile, WritesAndReplacesAFile) {
  TempDir dir;
  auto path = dir.path() / "out.txt";
  write_file_atomically(path, "first version\n");
  EXPECT_EQ(read_file_bytes(path), "first version\n");
  write_file_atomically(path, "second\n");
  EXPECT_EQ(read_file_bytes(path), "second\n");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.txt"});
}

TEST(IoAtomicFile, LargeAndSmallWritesArriveInOrder) {
  std::mt19937 rng(std::random_device{}());
  TempDir dir;
  auto path = dir.path() / "blob.bin";
  // Mix pieces smaller and larger than the sink's buffer so both paths are exercised.
  std::vector<std::string> pieces = {random_bytes(7, rng),     random_bytes(300000, rng),
                                     random_bytes(65536, rng), random_bytes(1, rng),
                                     random_bytes(65535, rng), random_bytes(100000, rng)};
  std::string expected;
  for (const auto& p : pieces) expected += p;
  write_file_atomically(path, [&](FileSink& out) {
    for (const auto& p : pieces) out.write(p);
    EXPECT_EQ(out.bytes_written(), expected.size());
  });
  EXPECT_EQ(read_file_bytes(path), expected);
}

TEST(IoAtomicFile, ThrowingWriterLeavesOldFileAndNoTemporary) {
  TempDir dir;
  auto path = dir.path() / "model.safetensors";
  write_file_atomically(path, "old contents");
  std::mt19937 rng(std::random_device{}());
  const std::string big =
      random_bytes(200000, rng);  // bigger than the buffer: bytes hit the temp file
  EXPECT_THROW(write_file_atomically(path,
                                     [&](FileSink& out) {
                                       out.write(big);
                                       out.flush();
                                       throw std::runtime_error("disk full, simulated");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read_file_bytes(path), "old contents");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.safetensors"});
}

TEST(IoAtomicFile, ThrowingWriterWithNoOldFileLeavesNothing) {
  TempDir dir;
  EXPECT_THROW(write_file_atomically(dir.path() / "new.csv",
                                     [&](FileSink& out) {
                                       out.write("partial row,");
                                       throw Error(ErrorKind::Invalid, "simulated", __FILE__,
                                                   __LINE__);
                                     }),
               Error);
  EXPECT_TRUE(dir.list().empty());
}

TEST(IoAtomicFile, MissingDirectoryIsAnIoErrorNamingThePath) {
  TempDir dir;
  auto path = dir.path() / "no_such_dir" / "x.txt";
  try {
    write_file_atomically(path, "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.message();
  }
}

TEST(IoAtomicFile, TargetThatIsADirectoryFailsCleanly) {
  TempDir dir;
  std::filesystem::create_directory(dir.path() / "taken");
  try {
    write_file_atomically(dir.path() / "taken", "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.message().find("taken"), std::string::npos) << e.message();
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"taken"});
}

TEST(IoAtomicFile, ReadingAMissingFileIsAnIoError) {
  TempDir dir;
  try {
    read_file_bytes(dir.path() / "absent.bin");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.message().find("absent.bin"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace gpuml
