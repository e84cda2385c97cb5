#include "data/shard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/shard_checksum.h"

namespace gpuml::data {

namespace fs = std::filesystem;

namespace {

constexpr size_t kWriteBuffer = size_t{1} << 20;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

ShardWriter::ShardWriter(fs::path dir, std::vector<ShardField> fields, uint64_t shard_bytes) : dir_(std::move(dir)) {
  GPUML_CHECK(!fields.empty(), "ShardWriter: a record needs at least one field");
  manifest_.fields = std::move(fields);
  record_bytes_ = manifest_.record_bytes();
  GPUML_CHECK(record_bytes_ > 0, "ShardWriter: records of 0 bytes");
  records_per_shard_ = std::max<int64_t>(1, static_cast<int64_t>(shard_bytes / record_bytes_));
  for (size_t i = 0; i < manifest_.fields.size(); ++i) {
    const ShardField& f = manifest_.fields[i];
    if (f.name == "y" && f.shape.empty() && is_integral(f.dtype)) {
      label_field_ = static_cast<int>(i);
      label_offset_ = manifest_.field_offset("y");
    }
  }

  std::error_code ec;
  if (fs::exists(dir_)) {
    GPUML_CHECK_KIND(ErrorKind::Io, fs::is_directory(dir_), "{}: exists and is not a directory", dir_.string());
    // Only an empty directory or an earlier shard dataset may be overwritten.
    for (const auto& entry : fs::directory_iterator(dir_)) {
      std::string name = entry.path().filename().string();
      bool ours = name == kShardManifestName || name == kTokenizerFileName || entry.path().extension() == ".shard" ||
                  name.starts_with(".tmp");
      GPUML_CHECK_KIND(ErrorKind::Io, ours,
                       "{}: the output directory holds other files ({}); pack into an empty or new directory",
                       dir_.string(), name);
    }
    // The old manifest goes first: from here on no manifest points at shards being rewritten.
    fs::remove(dir_ / kShardManifestName, ec);
    GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: cannot remove the old manifest: {}", dir_.string(), ec.message());
    for (const auto& entry : fs::directory_iterator(dir_))
      if (entry.path().extension() == ".shard" || entry.path().filename() == kTokenizerFileName)
        fs::remove(entry.path(), ec);
  } else {
    fs::create_directories(dir_, ec);
    GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: cannot create the directory: {}", dir_.string(), ec.message());
  }
  buffer_.resize(kWriteBuffer);
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) ::close(fd_);  // no manifest: the partial dataset stays unreadable
}

void ShardWriter::set_tokenizer(const std::string& tokenizer_json, int64_t vocab_size) {
  GPUML_CHECK(!finished_, "ShardWriter: set_tokenizer after finish");
  write_file_atomically(dir_ / kTokenizerFileName, tokenizer_json);
  manifest_.tokenizer = kTokenizerFileName;
  manifest_.vocab_size = vocab_size;
}

void ShardWriter::begin_split(const std::string& name) {
  GPUML_CHECK(!finished_, "ShardWriter: begin_split after finish");
  GPUML_CHECK(!name.empty() && name.find_first_of("/\\. ") == std::string::npos,
              "ShardWriter: split name '{}' must be a plain word", name);
  GPUML_CHECK(!manifest_.has_split(name), "ShardWriter: split '{}' written twice", name);
  close_shard();
  manifest_.splits.push_back({name, 0, {}});
}

void ShardWriter::open_shard() {
  ShardSplit& split = manifest_.splits.back();
  current_ = ShardFile{fmt::format("{}-{:05d}.shard", split.name, split.shards.size()), 0, 0, 0};
  fs::path path = dir_ / current_.file;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  GPUML_CHECK_KIND(ErrorKind::Io, fd_ >= 0, "{}: cannot create: {}", path.string(), errno_text());
}

void ShardWriter::flush_buffer() {
  const uint8_t* p = buffer_.data();
  size_t left = buffered_;
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    GPUML_CHECK_KIND(ErrorKind::Io, n > 0, "{}: write failed: {}", (dir_ / current_.file).string(), errno_text());
    p += n;
    left -= static_cast<size_t>(n);
  }
  buffered_ = 0;
}

void ShardWriter::close_shard() {
  if (fd_ < 0) return;
  flush_buffer();
  fs::path path = dir_ / current_.file;
  GPUML_CHECK_KIND(ErrorKind::Io, ::fsync(fd_) == 0, "{}: fsync failed: {}", path.string(), errno_text());
  int rc = ::close(fd_);
  fd_ = -1;
  GPUML_CHECK_KIND(ErrorKind::Io, rc == 0, "{}: close failed: {}", path.string(), errno_text());
  ShardSplit& split = manifest_.splits.back();
  split.records += current_.records;
  split.shards.push_back(current_);
}

void ShardWriter::track_label(const uint8_t* record) {
  const uint8_t* p = record + label_offset_;
  int64_t label = dispatch_dtype(manifest_.fields[static_cast<size_t>(label_field_)].dtype, [&]<typename T>(T) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return static_cast<int64_t>(to_double(v));
  });
  GPUML_CHECK(label >= 0, "record {}: label y = {} is negative (labels are class ids 0..C-1)", total_records_, label);
  max_label_ = std::max(max_label_, label);
}

void ShardWriter::write_records(const void* records, int64_t count) {
  GPUML_CHECK(!manifest_.splits.empty() && !finished_, "ShardWriter: write_records needs begin_split first");
  const auto* p = static_cast<const uint8_t*>(records);
  for (int64_t r = 0; r < count; ++r, p += record_bytes_) {
    if (fd_ < 0) open_shard();
    if (label_field_ >= 0) track_label(p);
    // Records are small next to the buffer: copy whole ones, flushing when the next does not fit.
    if (buffered_ + record_bytes_ > buffer_.size()) flush_buffer();
    if (record_bytes_ > buffer_.size()) {
      buffer_.resize(record_bytes_);
    }
    std::memcpy(buffer_.data() + buffered_, p, record_bytes_);
    buffered_ += record_bytes_;
    current_.crc32c = shard_crc32c(p, record_bytes_, current_.crc32c);
    current_.bytes += record_bytes_;
    ++current_.records;
    ++total_records_;
    if (current_.records == records_per_shard_) close_shard();
  }
}

ShardManifest ShardWriter::finish() {
  GPUML_CHECK(!finished_, "ShardWriter: finish called twice");
  GPUML_CHECK(!manifest_.splits.empty(), "ShardWriter: no split was written");
  close_shard();
  for (const ShardSplit& s : manifest_.splits)
    GPUML_CHECK(s.records > 0, "ShardWriter: split '{}' has no records", s.name);
  manifest_.num_classes = max_label_ + 1;
  write_file_atomically(dir_ / kShardManifestName, shard_manifest_json(manifest_));
  finished_ = true;
  return manifest_;
}

}  // namespace gpuml::data
