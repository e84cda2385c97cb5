// The on-disk format of a sharded dataset (docs/SHARDS.md is the full description): a directory
// holding `manifest.json` and binary shard files of fixed-layout records. A record is its fields'
// bytes back to back, little-endian, C order, no padding, so record r of a shard starts at byte
// r * record_bytes and a reader needs no index. The manifest names every shard with its record
// count, byte size and CRC-32C; it is written last and atomically, so a manifest never points at
// a shard that is still being written.
//
//   data::ShardManifest m = data::read_shard_manifest("packed/");   // validates everything
//   const data::ShardSplit& train = m.split("train");
//   int64_t n = train.records;                                        // sum over its shards
//   size_t bytes = m.record_bytes();                                  // e.g. 784 + 8 for x u8 (1,28,28), y i64 ()
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"

namespace gpuml::data {

inline constexpr const char* kShardManifestName = "manifest.json";
inline constexpr const char* kShardFormatName = "gpuml-shards";
inline constexpr const char* kTokenizerFileName = "tokenizer.json";  // a token dataset's tokenizer
inline constexpr int kShardFormatVersion = 1;

struct ShardField {
  std::string name;
  DType dtype = DType::u8;
  Shape shape;  // per record; () for a scalar
  // Token datasets (`gpuml data pack CORPUS --tokenizer`): the field "tokens" holds unsigned token
  // ids of 2 or 4 bytes ("u16", "u32" in the manifest), which are not tensor dtypes; `dtype` is
  // then unused. 0 for every other field.
  int token_bytes = 0;
  size_t element_bytes() const { return token_bytes > 0 ? static_cast<size_t>(token_bytes) : dtype_size(dtype); }
  size_t bytes() const { return static_cast<size_t>(numel(shape)) * element_bytes(); }
  std::string dtype_text() const;  // "u8", "f32", ... or "u16"/"u32" for tokens
};

struct ShardFile {
  std::string file;       // a plain file name inside the dataset directory
  int64_t records = 0;
  uint64_t bytes = 0;     // records * record_bytes (shards are uncompressed)
  uint32_t crc32c = 0;    // of the whole file
};

struct ShardSplit {
  std::string name;       // "train", "test", ...
  int64_t records = 0;    // sum of the shards' records
  std::vector<ShardFile> shards;
  uint64_t max_shard_bytes() const;
};

struct ShardManifest {
  std::vector<ShardField> fields;
  std::vector<ShardSplit> splits;
  int64_t num_classes = 0;     // 1 + the largest label of field "y" over all splits; 0 if none
  std::string compression = "none";
  std::string source;          // what was packed, for `gpuml data info`
  // Class id -> name (image folders: the class folder names), empty when the input has none.
  std::vector<std::string> class_names;
  // Token datasets: the vocabulary size (every token id is below it) and the tokenizer's file in
  // the dataset directory (tokenizers' tokenizer.json), written before the manifest.
  int64_t vocab_size = 0;
  std::string tokenizer;
  bool is_token_dataset() const { return has_field("tokens") && field("tokens").token_bytes > 0; }

  size_t record_bytes() const;
  // Byte offset of a field within a record; throws naming the field and the schema if absent.
  size_t field_offset(const std::string& name) const;
  const ShardField& field(const std::string& name) const;
  bool has_field(const std::string& name) const;
  bool has_split(const std::string& name) const;
  const ShardSplit& split(const std::string& name) const;  // throws naming the available splits
};

// True when `dir` is a directory holding a manifest.json.
bool is_shard_dataset(const std::filesystem::path& dir);

// Parses and validates manifest.json text: format name and version, every field (name, dtype,
// shape), every split and shard (file names, counts, sizes consistent with the schema). Errors
// are ErrorKind::Io and name the manifest and the offending entry ("fields[1] (y): unknown dtype 'i65'").
ShardManifest parse_shard_manifest(const std::string& text, const std::string& where);
ShardManifest read_shard_manifest(const std::filesystem::path& dir);
std::string shard_manifest_json(const ShardManifest& manifest);

// Token datasets: throws Io naming `where` (a shard file), the record and the id when one of the
// `count` token ids (little-endian, `token_bytes` each) is not below `vocab_size`.
void check_token_ids(const uint8_t* tokens, int64_t count, int token_bytes, int64_t vocab_size,
                     const std::string& where);

// "64M", "1.5G", "4096", "512K" (powers of 1024; a trailing "B"/"iB" is accepted) -> bytes.
uint64_t parse_byte_size(const std::string& text, const std::string& what);
// 1536 -> "1.5 KiB"
std::string format_bytes(uint64_t bytes);

}  // namespace gpuml::data
