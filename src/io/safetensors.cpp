#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/atomic_file.h"
#include "core/json_read.h"

namespace gpuml {

// Tensor bytes are copied between memory and file as they are; safetensors is little-endian.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using Json = nlohmann::ordered_json;
constexpr std::string_view kMetadataKey = "__metadata__";

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (DType d : kAllDTypes)
    if (safetensors_dtype_name(d) == name) return d;
  return std::nullopt;
}

// ---- writing -------------------------------------------------------------------------------

// Streams the logical row-major bytes of a strided host tensor, one innermost row at a time.
void write_tensor_bytes(FileSink& out, const Tensor& t) {
  if (t.numel() == 0) return;
  if (t.is_contiguous()) {
    out.write(t.raw_data(), t.nbytes());
    return;
  }
  const size_t elem = dtype_size(t.dtype());
  const int ndim = t.ndim();  // >= 1: a 0-d tensor is always contiguous
  const int64_t row_len = t.shape()[ndim - 1];
  const int64_t row_stride = t.strides()[ndim - 1];
  std::vector<char> row(static_cast<size_t>(row_len) * elem);
  std::vector<int64_t> index(ndim - 1, 0);  // position in the outer dims
  const char* base = static_cast<const char*>(t.raw_data());
  for (int64_t rows = t.numel() / row_len; rows > 0; --rows) {
    int64_t offset = 0;
    for (int d = 0; d < ndim - 1; ++d) offset += index[d] * t.strides()[d];
    for (int64_t i = 0; i < row_len; ++i)
      std::memcpy(row.data() + i * elem,
                  base + (offset + i * row_stride) * static_cast<int64_t>(elem), elem);
    out.write(row.data(), row.size());
    for (int d = ndim - 2; d >= 0; --d) {
      if (++index[d] < t.shape()[d]) break;
      index[d] = 0;
    }
  }
}

std::string build_header(const std::filesystem::path& path, const NamedTensors& tensors,
                         const SafetensorsMetadata& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    GPUML_CHECK(!name.empty(), "save_safetensors '{}': a tensor has an empty name", path.string());
    GPUML_CHECK(name != kMetadataKey, "save_safetensors '{}': '{}' is reserved for metadata",
                path.string(), name);
    GPUML_CHECK(!header.contains(name), "save_safetensors '{}': duplicate tensor name '{}'",
                path.string(), name);
    GPUML_CHECK(t.defined(), "save_safetensors '{}': tensor '{}' is undefined", path.string(),
                name);
    GPUML_CHECK(t.device().is_host(),
                "save_safetensors '{}': tensor '{}' is on {}; copy it to the host first",
                path.string(), name, t.device().str());
    Json entry = Json::object();
    entry["dtype"] = safetensors_dtype_name(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = Json::array({offset, offset + t.nbytes()});
    offset += t.nbytes();
    header[name] = std::move(entry);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {  // a name or metadata string that is not valid UTF-8
    GPUML_FAIL(ErrorKind::Invalid, "save_safetensors '{}': cannot encode the header: {}",
               path.string(), e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// ---- reading -------------------------------------------------------------------------------

class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    int err = errno;
    if (fd_ < 0)
      GPUML_FAIL(ErrorKind::Io, "cannot open '{}': {}", path.string(), std::strerror(err));
    struct stat st {};
    int rc = ::fstat(fd_, &st);
    err = errno;
    if (rc != 0) {
      ::close(fd_);
      GPUML_FAIL(ErrorKind::Io, "cannot stat '{}': {}", path.string(), std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      GPUML_FAIL(ErrorKind::Io, "'{}' is not a regular file", path.string());
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }

  // Reads exactly `bytes` at `offset`; the caller has checked the range against size().
  void read_at(uint64_t offset, void* dst, uint64_t bytes, std::string_view what) const {
    char* p = static_cast<char*>(dst);
    while (bytes > 0) {
      ssize_t n =
          ::pread(fd_, p, std::min<uint64_t>(bytes, uint64_t{1} << 30), static_cast<off_t>(offset));
      int err = errno;
      if (n < 0 && err == EINTR) continue;
      if (n < 0)
        GPUML_FAIL(ErrorKind::Io, "cannot read {} of '{}': {}", what, path_.string(),
                   std::strerror(err));
      if (n == 0)  // the file shrank under us
        GPUML_FAIL(ErrorKind::Io, "'{}' ended early while reading {}", path_.string(), what);
      p += n;
      offset += static_cast<uint64_t>(n);
      bytes -= static_cast<uint64_t>(n);
    }
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// JSON allows repeated keys and nlohmann keeps one silently; safetensors names must be unique,
// so a parser callback watches every object's keys.
struct DuplicateKeyWatch {
  std::string where;  // for the depth check (core/json_read.h)
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::pair<std::string, int>> duplicate;  // key, depth (1 = a tensor name)

  bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
    using Event = Json::parse_event_t;
    if (event == Event::object_start || event == Event::array_start)
      check_json_depth(depth, where, ErrorKind::Invalid);
    if (event == Event::object_start)
      open_objects.emplace_back();
    else if (event == Event::object_end && !open_objects.empty())
      open_objects.pop_back();
    else if (event == Event::key && !open_objects.empty() && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && !duplicate) duplicate = {{key, depth}};
    }
    return true;
  }
};

uint64_t checked_byte_count(const Shape& shape, DType dtype, const std::string& file,
                            const std::string& shown) {
  uint64_t count = dtype_size(dtype);
  for (int64_t d : shape) {
    GPUML_CHECK(!__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count),
                "safetensors '{}': tensor '{}': shape {} is too large", file, shown,
                shape_str(shape));
  }
  return count;
}

Entry parse_entry(const std::string& file, const std::string& name, const Json& value) {
  const std::string shown = text_excerpt(name);  // names can be megabytes long
  GPUML_CHECK(value.is_object(), "safetensors '{}': tensor '{}': entry is not a JSON object", file,
              name);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    GPUML_CHECK(value.contains(key), "safetensors '{}': tensor '{}': missing \"{}\"", file, shown,
                key);
  Entry e;
  e.name = name;

  const Json& dtype = value["dtype"];
  GPUML_CHECK(dtype.is_string(),
              "safetensors '{}': tensor '{}': \"dtype\" must be a string, got {}", file, shown,
              json_excerpt(dtype));
  std::optional<DType> d = dtype_from_safetensors_name(dtype.get_ref<const std::string&>());
  GPUML_CHECK(d.has_value(),
              "safetensors '{}': tensor '{}': unknown or unsupported dtype {} (gpuml reads F32 F64 "
              "BF16 F16 "
              "I32 I64 U8 BOOL)",
              file, shown, json_excerpt(dtype));
  e.dtype = *d;

  const Json& shape = value["shape"];
  GPUML_CHECK(shape.is_array(), "safetensors '{}': tensor '{}': \"shape\" must be an array, got {}",
              file, shown, json_excerpt(shape));
  for (size_t i = 0; i < shape.size(); ++i) {
    // A non-negative integer literal parses as unsigned; -1 as integer; 2.0 or 1e3 as float.
    GPUML_CHECK(shape[i].is_number_unsigned(),
                "safetensors '{}': tensor '{}': dim {} is {}; dims must be non-negative integers",
                file, shown, i, json_excerpt(shape[i]));
    uint64_t dim = shape[i].get<uint64_t>();
    GPUML_CHECK(dim <= static_cast<uint64_t>(INT64_MAX),
                "safetensors '{}': tensor '{}': dim {} is too large", file, shown, dim);
    e.shape.push_back(static_cast<int64_t>(dim));
  }

  const Json& offsets = value["data_offsets"];
  GPUML_CHECK(
      offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
          offsets[1].is_number_unsigned(),
      "safetensors '{}': tensor '{}': \"data_offsets\" must be [begin, end] with non-negative "
      "integers, got {}",
      file, shown, json_excerpt(offsets));
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  GPUML_CHECK(e.begin <= e.end,
              "safetensors '{}': tensor '{}': data_offsets [{}, {}] has begin > end", file, shown,
              e.begin, e.end);
  uint64_t expected = checked_byte_count(e.shape, e.dtype, file, shown);
  GPUML_CHECK(
      e.end - e.begin == expected,
      "safetensors '{}': tensor '{}': data_offsets [{}, {}] hold {} bytes but {} {} needs {}", file,
      shown, e.begin, e.end, e.end - e.begin, safetensors_dtype_name(e.dtype), shape_str(e.shape),
      expected);
  return e;
}

SafetensorsMetadata parse_metadata(const std::string& file, const Json& value) {
  GPUML_CHECK(value.is_object(),
              "safetensors '{}': \"__metadata__\" must be an object of strings, got {}", file,
              json_excerpt(value));
  SafetensorsMetadata metadata;
  for (const auto& [key, v] : value.items()) {
    GPUML_CHECK(v.is_string(), "safetensors '{}': metadata '{}' must be a string, got {}", file,
                text_excerpt(key), json_excerpt(v));
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

// The spec wants the data section indexed completely: sorted by offset, each tensor starts where
// the previous one ended, and the last one ends at the end of the file.
void check_coverage(const std::string& file, std::vector<Entry>& entries, uint64_t data_bytes) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    GPUML_CHECK(
        e.end <= data_bytes,
        "safetensors '{}': tensor '{}': data_offsets [{}, {}] run past the data section ({} bytes)",
        file, text_excerpt(e.name), e.begin, e.end, data_bytes);
    GPUML_CHECK(e.begin >= cursor,
                "safetensors '{}': tensor '{}': data_offsets [{}, {}] overlap tensor '{}' (which "
                "ends at {})",
                file, text_excerpt(e.name), e.begin, e.end, previous ? text_excerpt(previous->name) : "", cursor);
    GPUML_CHECK(e.begin == cursor,
                "safetensors '{}': tensor '{}': gap of {} unindexed bytes before it (at {})", file,
                text_excerpt(e.name), e.begin - cursor, cursor);
    cursor = e.end;
    previous = &e;
  }
  GPUML_CHECK(cursor == data_bytes,
              "safetensors '{}': {} trailing bytes after the last tensor are not indexed", file,
              data_bytes - cursor);
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
    case DType::boolean:
      return "BOOL";
  }
  GPUML_FAIL(ErrorKind::Internal, "bad dtype {}", static_cast<int>(dtype));
}

bool SafetensorsFile::contains(std::string_view name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& p) { return p.first == name; });
}

const Tensor& SafetensorsFile::at(std::string_view name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  GPUML_FAIL(ErrorKind::Invalid, "safetensors: no tensor named '{}' ({} tensors in the file)", name,
             tensors.size());
}

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata) {
  const std::string header = build_header(path, tensors, metadata);
  write_file_atomically(path, [&](FileSink& out) {
    uint8_t size_le[8];
    for (int i = 0; i < 8; ++i)
      size_le[i] = static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i));
    out.write(size_le, 8);
    out.write(header);
    for (const auto& [name, t] : tensors) write_tensor_bytes(out, t);
  });
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  const std::string file = path.string();
  InputFile in(path);
  GPUML_CHECK_KIND(ErrorKind::Io, in.size() >= 8,
                   "safetensors '{}': file is {} bytes, shorter than the 8-byte header size", file,
                   in.size());
  uint8_t size_le[8];
  in.read_at(0, size_le, 8, "the header size");
  uint64_t header_bytes = 0;
  for (int i = 0; i < 8; ++i) header_bytes |= uint64_t{size_le[i]} << (8 * i);
  GPUML_CHECK(
      header_bytes <= kSafetensorsMaxHeaderBytes,
      "safetensors '{}': header size {} exceeds the {} byte limit (not a safetensors file?)", file,
      header_bytes, kSafetensorsMaxHeaderBytes);
  GPUML_CHECK_KIND(
      ErrorKind::Io, header_bytes <= in.size() - 8,
      "safetensors '{}': header size {} runs past the end of the {}-byte file (truncated?)", file,
      header_bytes, in.size());
  std::string header_text(header_bytes, '\0');
  in.read_at(8, header_text.data(), header_bytes, "the header");
  GPUML_CHECK(!header_text.empty() && header_text[0] == '{',
              "safetensors '{}': header is not a JSON object (it must begin with '{{')", file);

  DuplicateKeyWatch watch;
  watch.where = fmt::format("safetensors '{}': header", file);
  Json header;
  try {
    header = Json::parse(header_text, std::ref(watch));
  } catch (const Json::exception& e) {
    GPUML_FAIL(ErrorKind::Invalid, "safetensors '{}': header is not valid JSON: {}", file,
               text_excerpt(e.what(), 2 * kExcerptChars));
  }
  GPUML_CHECK(header.is_object(), "safetensors '{}': header is not a JSON object", file);
  if (watch.duplicate) {
    GPUML_CHECK(watch.duplicate->second != 1, "safetensors '{}': duplicate tensor name '{}'", file,
                text_excerpt(watch.duplicate->first));
    GPUML_FAIL(ErrorKind::Invalid, "safetensors '{}': duplicate key '{}' in the header", file,
               text_excerpt(watch.duplicate->first));
  }

  SafetensorsFile result;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey)
      result.metadata = parse_metadata(file, value);
    else
      entries.push_back(parse_entry(file, name, value));
  }
  const uint64_t data_start = 8 + header_bytes;
  check_coverage(file, entries, in.size() - data_start);

  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    in.read_at(data_start + e.begin, t.raw_data(), e.end - e.begin,
               fmt::format("tensor '{}'", text_excerpt(e.name)));
    if (e.dtype == DType::boolean) {  // any byte but 0/1 would be an invalid C++ bool
      const uint8_t* bytes = static_cast<const uint8_t*>(t.raw_data());
      for (uint64_t i = 0; i < e.end - e.begin; ++i)
        GPUML_CHECK(bytes[i] <= 1,
                    "safetensors '{}': tensor '{}': BOOL element {} is {}, not 0 or 1", file,
                    text_excerpt(e.name), i, bytes[i]);
    }
    result.tensors.emplace_back(e.name, std::move(t));
  }
  return result;
}

}  // namespace gpuml
