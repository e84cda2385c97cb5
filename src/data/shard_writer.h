// Writes a sharded dataset (data/shard_format.h): records go to shard files of at most
// `shard_bytes` each (always whole records), each shard is fsync'ed when closed, and the manifest
// is written last and atomically by finish(). A writer destroyed before finish() (an error, a
// kill) leaves shard files but no manifest, so no reader ever trusts an incomplete dataset.
// Opening a writer removes a previous manifest in the directory first, for the same reason.
//
//   data::ShardWriter w("packed", {{"x", DType::u8, {1, 28, 28}}, {"y", DType::i64, {}}}, 64 << 20);
//   w.begin_split("train");
//   w.write_records(records, n);     // n * 792 bytes, fields back to back
//   w.begin_split("test");
//   ...
//   data::ShardManifest m = w.finish();
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace gpuml::data {

class ShardWriter {
 public:
  // `dir` must be empty, absent, or a previous shard dataset (whose *.shard files are replaced).
  ShardWriter(std::filesystem::path dir, std::vector<ShardField> fields, uint64_t shard_bytes);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void set_source(std::string source) { manifest_.source = std::move(source); }
  void set_class_names(std::vector<std::string> names) { manifest_.class_names = std::move(names); }
  // Token datasets: writes the tokenizer (tokenizers' JSON) as tokenizer.json in the directory
  // now, atomically, so that it is there before the manifest that names it.
  void set_tokenizer(const std::string& tokenizer_json, int64_t vocab_size);
  // Starts a new split; later records go to it. Split names are plain words ("train", "test").
  void begin_split(const std::string& name);
  // `count` records of record_bytes() each, fields back to back (see ShardManifest).
  void write_records(const void* records, int64_t count);
  size_t record_bytes() const { return record_bytes_; }
  int64_t records_written() const { return total_records_; }
  // Closes the last shard and writes manifest.json atomically; returns what it wrote.
  ShardManifest finish();

 private:
  void open_shard();
  void close_shard();
  void flush_buffer();
  void track_label(const uint8_t* record);

  std::filesystem::path dir_;
  ShardManifest manifest_;
  size_t record_bytes_ = 0;
  int64_t records_per_shard_ = 0;
  int label_field_ = -1;   // index of an integral scalar field "y", whose max sets num_classes
  size_t label_offset_ = 0;
  int64_t max_label_ = -1;
  int64_t total_records_ = 0;
  bool finished_ = false;

  int fd_ = -1;            // the open shard
  ShardFile current_;
  std::vector<uint8_t> buffer_;
  size_t buffered_ = 0;
};

}  // namespace gpuml::data
