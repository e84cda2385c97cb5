// Reading a sharded dataset (data/shard_format.h) with plain reads: whole shards into a
// caller's buffer, each checked against the manifest's CRC-32C on every read, so a damaged or
// truncated shard is refused with an error naming its file before any of its records is used.
// Plain reads rather than mmap: mapped file pages count in the process's resident set, and the
// streaming loader promises a bound on that.
//
//   data::ShardDataset ds("packed");                       // validates the manifest, stats every shard
//   std::vector<uint8_t> buf;
//   ds.read_shard(ds.manifest().split("train"), 0, buf);   // throws Io naming train-00000.shard if damaged
//   data::InMemoryDataset test = ds.load_split("test");    // x (N, ...) and y (N,) fields
//   for (const data::ShardProblem& p : data::verify_shard_dataset("packed")) fmt::print("{}\n", p.message);
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/huge_buffer.h"
#include "data/shard_format.h"

namespace gpuml::data {

class ShardDataset {
 public:
  // Reads and validates the manifest; every shard file must exist with its declared size
  // (checksums are verified when a shard is read, or by verify_shard_dataset).
  explicit ShardDataset(std::filesystem::path dir);

  const ShardManifest& manifest() const { return manifest_; }
  const std::filesystem::path& dir() const { return dir_; }

  // Reads shard `index` of `split` into `out` (resized to the shard's size) and checks its
  // CRC-32C. drop_page_cache: tell the kernel the pages are not needed again (a dataset larger
  // than RAM would otherwise evict everything else from the page cache).
  void read_shard(const ShardSplit& split, size_t index, std::vector<uint8_t>& out,
                  bool drop_page_cache = false) const;

  // For streaming: the same into `out` (grown as needed). direct: read with
  // O_DIRECT, so the disk writes straight into the buffer and the page cache is neither filled nor
  // evicted (no kernel copy either); where the filesystem refuses O_DIRECT, a plain read.
  void read_shard(const ShardSplit& split, size_t index, HugeBuffer& out, bool direct) const;

  // A whole split in memory: field `x` as features (N, ...) and field `y` as labels (N,).
  InMemoryDataset load_split(const std::string& split, const std::string& x = "x", const std::string& y = "y") const;

 private:
  std::filesystem::path dir_;
  ShardManifest manifest_;
};

// What ShardDataset::read_shard does, for one shard file of the dataset in `dir`.
void read_shard_file(const std::filesystem::path& dir, const ShardFile& shard, std::vector<uint8_t>& out,
                     bool drop_page_cache = false);

void read_shard_file(const std::filesystem::path& dir, const ShardFile& shard, HugeBuffer& out, bool direct);

// What `gpuml data info` prints: source, schema, record size, classes, and per split the
// records, shards and bytes. Validates the manifest (not the checksums).
std::string describe_shard_dataset(const std::filesystem::path& dir);

struct ShardProblem {
  std::string file;     // shard file name, or manifest.json
  std::string message;  // what is wrong, naming the file
};

// Reads every shard and checks sizes and checksums; an unreadable manifest is one problem.
// `on_shard(done, total)` is called after each shard (for a progress bar).
std::vector<ShardProblem> verify_shard_dataset(const std::filesystem::path& dir,
                                               const std::function<void(int64_t, int64_t)>& on_shard = {});

}  // namespace gpuml::data
