#include "data/shard_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_read.h"

namespace gpuml::data {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Manifest errors are the user's file being wrong: Io, naming the manifest.
#define MANIFEST_CHECK(cond, ...) GPUML_CHECK_KIND(ErrorKind::Io, cond, __VA_ARGS__)

// A shard file name must stay inside the dataset directory.
bool is_plain_file_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name == kShardManifestName) return false;
  for (char c : name)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

// An integer that T holds: nlohmann would cast 1e300 or 2^63 into T (undefined or wrapped).
template <typename T>
bool fits(const json& v) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  int64_t i = v.get<int64_t>();
  return i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
         (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
}

template <typename T>
T get_field(const json& obj, const char* key, const std::string& where) {
  MANIFEST_CHECK(obj.is_object() && obj.contains(key), "{}: missing \"{}\"", where, key);
  const json& v = obj.at(key);
  bool ok = true;
  if constexpr (std::is_integral_v<T>) {
    ok = fits<T>(v);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    ok = v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return fits<int64_t>(e); });
  } else {
    ok = v.is_string();
  }
  MANIFEST_CHECK(ok, "{}: \"{}\" has the wrong type or range ({})", where, key, json_excerpt(v));
  return v.get<T>();
}

// An optional field: absent is `fallback`, present must have the type.
template <typename T>
T optional_field(const json& obj, const char* key, T fallback, const std::string& where) {
  return obj.contains(key) ? get_field<T>(obj, key, where) : fallback;
}

ShardField parse_field(const json& j, size_t index, const std::string& where) {
  std::string at = fmt::format("{}: fields[{}]", where, index);
  ShardField f;
  f.name = get_field<std::string>(j, "name", at);
  at += fmt::format(" ({})", text_excerpt(f.name));
  MANIFEST_CHECK(!f.name.empty(), "{}: empty field name", at);
  std::string dtype = get_field<std::string>(j, "dtype", at);
  if (dtype == "u16" || dtype == "u32") {
    MANIFEST_CHECK(f.name == "tokens", "{}: dtype {} is for the token field (\"tokens\") only", at, dtype);
    f.token_bytes = dtype == "u16" ? 2 : 4;
  } else {
    try {
      f.dtype = dtype_from_name(dtype);
    } catch (const Error&) {
      GPUML_FAIL(ErrorKind::Io, "{}: unknown dtype '{}' (expected f32 f64 bf16 f16 i32 i64 u8 bool, or u16 u32 for "
                 "tokens)", at, text_excerpt(dtype));
    }
    MANIFEST_CHECK(f.name != "tokens", "{}: the token field holds u16 or u32 token ids, not {}", at, dtype);
  }
  f.shape = get_field<std::vector<int64_t>>(j, "shape", at);
  for (int64_t d : f.shape) MANIFEST_CHECK(d > 0 && d < (int64_t{1} << 31), "{}: bad shape {}", at, shape_str(f.shape));
  MANIFEST_CHECK(f.bytes() < (size_t{1} << 34), "{}: a record of shape {} is too large", at, shape_str(f.shape));
  return f;
}

}  // namespace

std::string ShardField::dtype_text() const {
  return token_bytes > 0 ? fmt::format("u{}", token_bytes * 8) : std::string(dtype_name(dtype));
}

uint64_t ShardSplit::max_shard_bytes() const {
  uint64_t m = 0;
  for (const ShardFile& s : shards) m = std::max(m, s.bytes);
  return m;
}

size_t ShardManifest::record_bytes() const {
  size_t total = 0;
  for (const ShardField& f : fields) total += f.bytes();
  return total;
}

bool ShardManifest::has_field(const std::string& name) const {
  for (const ShardField& f : fields)
    if (f.name == name) return true;
  return false;
}

const ShardField& ShardManifest::field(const std::string& name) const {
  for (const ShardField& f : fields)
    if (f.name == name) return f;
  std::vector<std::string> names;
  for (const ShardField& f : fields) names.push_back(f.name);
  GPUML_FAIL(ErrorKind::Invalid, "sharded dataset has no field '{}' (fields: {})", name, fmt::join(names, ", "));
}

size_t ShardManifest::field_offset(const std::string& name) const {
  size_t offset = 0;
  for (const ShardField& f : fields) {
    if (f.name == name) return offset;
    offset += f.bytes();
  }
  field(name);  // throws with the list of fields
  return 0;
}

bool ShardManifest::has_split(const std::string& name) const {
  for (const ShardSplit& s : splits)
    if (s.name == name) return true;
  return false;
}

const ShardSplit& ShardManifest::split(const std::string& name) const {
  for (const ShardSplit& s : splits)
    if (s.name == name) return s;
  std::vector<std::string> names;
  for (const ShardSplit& s : splits) names.push_back(s.name);
  GPUML_FAIL(ErrorKind::Invalid, "sharded dataset has no split '{}' (splits: {})", name, fmt::join(names, ", "));
}

bool is_shard_dataset(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_regular_file(dir / kShardManifestName, ec);
}

ShardManifest parse_shard_manifest(const std::string& text, const std::string& where) {
  json j = parse_json(text, where, ErrorKind::Io, "truncated or damaged?");
  MANIFEST_CHECK(j.is_object(), "{}: expected a JSON object", where);
  std::string format = get_field<std::string>(j, "format", where);
  MANIFEST_CHECK(format == kShardFormatName, "{}: format is '{}', expected '{}'", where, text_excerpt(format), kShardFormatName);
  int version = get_field<int>(j, "version", where);
  MANIFEST_CHECK(version == kShardFormatVersion, "{}: format version {} is not supported (this gpuml reads {})",
                 where, version, kShardFormatVersion);

  ShardManifest m;
  m.compression = optional_field<std::string>(j, "compression", "none", where);
  MANIFEST_CHECK(m.compression == "none", "{}: compression '{}' is not supported (this gpuml reads 'none')", where,
                 text_excerpt(m.compression));
  m.num_classes = optional_field<int64_t>(j, "num_classes", 0, where);
  MANIFEST_CHECK(m.num_classes >= 0, "{}: num_classes {} is negative", where, m.num_classes);
  m.source = optional_field<std::string>(j, "source", "", where);
  if (j.contains("class_names")) {
    const json& names = j.at("class_names");
    MANIFEST_CHECK(names.is_array(), "{}: \"class_names\" must be an array of strings", where);
    for (const json& n : names) {
      MANIFEST_CHECK(n.is_string(), "{}: \"class_names\" must be an array of strings", where);
      m.class_names.push_back(n.get<std::string>());
    }
  }

  m.vocab_size = optional_field<int64_t>(j, "vocab_size", 0, where);
  m.tokenizer = optional_field<std::string>(j, "tokenizer", "", where);
  MANIFEST_CHECK(m.tokenizer.empty() || is_plain_file_name(m.tokenizer),
                 "{}: tokenizer '{}' must be a plain file name in the dataset directory", where,
                 text_excerpt(m.tokenizer));

  const json& fields = j.contains("fields") ? j.at("fields") : json();
  MANIFEST_CHECK(fields.is_array() && !fields.empty(), "{}: \"fields\" must be a non-empty array", where);
  std::set<std::string> field_names;
  for (size_t i = 0; i < fields.size(); ++i) {
    m.fields.push_back(parse_field(fields[i], i, where));
    MANIFEST_CHECK(field_names.insert(m.fields.back().name).second, "{}: fields[{}]: field '{}' appears twice", where,
                   i, text_excerpt(m.fields.back().name));
  }
  const uint64_t record_bytes = m.record_bytes();
  if (m.has_field("tokens")) {
    const ShardField& t = m.field("tokens");
    MANIFEST_CHECK(m.fields.size() == 1 && t.shape.empty(),
                   "{}: a token dataset's records are one token each: fields [{{\"name\": \"tokens\", \"dtype\": "
                   "\"u16\", \"shape\": []}}]", where);
    const int64_t most = t.token_bytes == 2 ? int64_t{1} << 16 : int64_t{1} << 24;
    MANIFEST_CHECK(m.vocab_size >= 1 && m.vocab_size <= most,
                   "{}: a token dataset of {} ids needs \"vocab_size\" in [1, {}], got {}", where, t.dtype_text(),
                   most, m.vocab_size);
  }

  const json& splits = j.contains("splits") ? j.at("splits") : json();
  MANIFEST_CHECK(splits.is_array() && !splits.empty(), "{}: \"splits\" must be a non-empty array", where);
  std::set<std::string> split_names, files;
  for (size_t s = 0; s < splits.size(); ++s) {
    std::string at = fmt::format("{}: splits[{}]", where, s);
    ShardSplit split;
    split.name = get_field<std::string>(splits[s], "name", at);
    at += fmt::format(" ({})", text_excerpt(split.name));
    MANIFEST_CHECK(!split.name.empty() && split_names.insert(split.name).second, "{}: empty or repeated split name",
                   at);
    const json& shards = splits[s].contains("shards") ? splits[s].at("shards") : json();
    MANIFEST_CHECK(shards.is_array(), "{}: \"shards\" must be an array", at);
    for (size_t k = 0; k < shards.size(); ++k) {
      std::string shard_at = fmt::format("{} shards[{}]", at, k);
      ShardFile f;
      f.file = get_field<std::string>(shards[k], "file", shard_at);
      shard_at += fmt::format(" ({})", text_excerpt(f.file));
      MANIFEST_CHECK(is_plain_file_name(f.file), "{}: a shard must be a plain file name in the dataset directory",
                     shard_at);
      MANIFEST_CHECK(files.insert(f.file).second, "{}: the same file is listed twice", shard_at);
      f.records = get_field<int64_t>(shards[k], "records", shard_at);
      f.bytes = get_field<uint64_t>(shards[k], "bytes", shard_at);
      std::string crc = get_field<std::string>(shards[k], "crc32c", shard_at);
      MANIFEST_CHECK(crc.size() == 8 && crc.find_first_not_of("0123456789abcdef") == std::string::npos,
                     "{}: crc32c '{}' is not 8 lowercase hex digits", shard_at, text_excerpt(crc));
      f.crc32c = static_cast<uint32_t>(std::stoul(crc, nullptr, 16));
      MANIFEST_CHECK(f.records > 0, "{}: records must be positive, got {}", shard_at, f.records);
      uint64_t needed = 0;
      MANIFEST_CHECK(!__builtin_mul_overflow(static_cast<uint64_t>(f.records), record_bytes, &needed) &&
                         f.bytes == needed,
                     "{}: {} bytes, but {} records of {} bytes need {}", shard_at, f.bytes, f.records, record_bytes,
                     static_cast<uint64_t>(f.records) * record_bytes);
      MANIFEST_CHECK(!__builtin_add_overflow(split.records, f.records, &split.records),
                     "{}: the split's record count passes 2^63", shard_at);
      split.shards.push_back(std::move(f));
    }
    int64_t declared = get_field<int64_t>(splits[s], "records", at);
    MANIFEST_CHECK(declared == split.records, "{}: declares {} records, its shards hold {}", at, declared,
                   split.records);
    m.splits.push_back(std::move(split));
  }
  return m;
}

ShardManifest read_shard_manifest(const fs::path& dir) {
  fs::path path = dir / kShardManifestName;
  GPUML_CHECK_KIND(ErrorKind::Io, fs::is_regular_file(path),
                   "{}: not a sharded dataset (no {}; create one with `gpuml data pack`)", dir.string(),
                   kShardManifestName);
  return parse_shard_manifest(read_file_bytes(path), path.string());
}

std::string shard_manifest_json(const ShardManifest& m) {
  json fields = json::array();
  for (const ShardField& f : m.fields)
    fields.push_back({{"name", f.name}, {"dtype", f.dtype_text()}, {"shape", f.shape}});
  json splits = json::array();
  for (const ShardSplit& s : m.splits) {
    json shards = json::array();
    for (const ShardFile& f : s.shards)
      shards.push_back(
          {{"file", f.file}, {"records", f.records}, {"bytes", f.bytes}, {"crc32c", fmt::format("{:08x}", f.crc32c)}});
    splits.push_back({{"name", s.name}, {"records", s.records}, {"shards", shards}});
  }
  json j = {{"format", kShardFormatName}, {"version", kShardFormatVersion}, {"compression", m.compression},
            {"source", m.source},         {"num_classes", m.num_classes},   {"record_bytes", m.record_bytes()},
            {"fields", fields},           {"splits", splits}};
  if (!m.class_names.empty()) j["class_names"] = m.class_names;
  if (m.vocab_size > 0) j["vocab_size"] = m.vocab_size;
  if (!m.tokenizer.empty()) j["tokenizer"] = m.tokenizer;
  return j.dump(1) + "\n";
}

void check_token_ids(const uint8_t* tokens, int64_t count, int token_bytes, int64_t vocab_size,
                     const std::string& where) {
  const auto first_bad = [&]<typename T>(T) -> int64_t {
    for (int64_t i = 0; i < count; ++i) {
      T id;
      std::memcpy(&id, tokens + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
      if (static_cast<int64_t>(id) >= vocab_size) return i;
    }
    return -1;
  };
  const int64_t bad = token_bytes == 2 ? first_bad(uint16_t{}) : first_bad(uint32_t{});
  if (bad < 0) return;
  uint32_t id = 0;
  std::memcpy(&id, tokens + bad * token_bytes, static_cast<size_t>(token_bytes));  // little-endian hosts only
  GPUML_FAIL(ErrorKind::Io, "{}: token id {} (record {}) is beyond the vocabulary of {} tokens: the shard does not "
             "belong to this dataset's tokenizer, or is damaged", where, id, bad, vocab_size);
}

uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    GPUML_FAIL(ErrorKind::Invalid, "{} '{}': expected a size such as 4096, 512K, 64M or 2G", what, text);
  }
  std::string suffix = text.substr(used);
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.ends_with("IB")) suffix.resize(suffix.size() - 2);
  else if (suffix.size() > 1 && suffix.ends_with("B")) suffix.pop_back();
  else if (suffix == "B") suffix.clear();
  double scale = suffix.empty() ? 1 : suffix == "K" ? 1024.0 : suffix == "M" ? 1048576.0
                 : suffix == "G" ? 1073741824.0 : suffix == "T" ? 1099511627776.0 : -1;
  GPUML_CHECK(scale > 0, "{} '{}': unknown unit '{}' (use K, M, G or T)", what, text, text.substr(used));
  double bytes = value * scale;
  GPUML_CHECK(std::isfinite(bytes) && bytes >= 1 && bytes < 1.8e19, "{} '{}': must be at least one byte", what, text);
  return static_cast<uint64_t>(bytes);
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace gpuml::data
