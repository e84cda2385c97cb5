#include "data/shard_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "data/shard_checksum.h"

namespace gpuml::data {

namespace fs = std::filesystem;

namespace {

// Closes the descriptor on every path out, errors included.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

ShardDataset::ShardDataset(fs::path dir) : dir_(std::move(dir)), manifest_(read_shard_manifest(dir_)) {
  for (const ShardSplit& split : manifest_.splits)
    for (const ShardFile& shard : split.shards) {
      fs::path path = dir_ / shard.file;
      std::error_code ec;
      uint64_t size = fs::file_size(path, ec);
      GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: shard listed in the manifest is missing: {}", path.string(),
                       ec.message());
      GPUML_CHECK_KIND(ErrorKind::Io, size == shard.bytes,
                       "{}: damaged shard: {} bytes on disk, the manifest says {} (truncated or overwritten)",
                       path.string(), size, shard.bytes);
    }
}

namespace {

constexpr uint64_t kDirectAlign = 4096;  // O_DIRECT: buffer address, file offset and length

void check_crc(const fs::path& path, const ShardFile& shard, const uint8_t* data) {
  uint32_t crc = shard_crc32c(data, shard.bytes);
  GPUML_CHECK_KIND(ErrorKind::Io, crc == shard.crc32c,
                   "{}: damaged shard: CRC-32C is {:08x}, the manifest says {:08x}; re-pack or restore this file",
                   path.string(), crc, shard.crc32c);
}

// pread()s [done, shard.bytes) of `fd` into out + done, asking for up to `end` bytes (a direct
// read asks past the end of the file, rounded up to the alignment, and gets a short read there).
// Returns the bytes read so far: a direct read stops early if the kernel returns an unaligned
// count before the end, and the caller finishes with a buffered descriptor.
uint64_t read_range(int fd, const fs::path& path, const ShardFile& shard, uint8_t* out, uint64_t done, uint64_t end,
                    bool direct) {
  while (done < shard.bytes) {
    ssize_t n = ::pread(fd, out + done, end - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    GPUML_CHECK_KIND(ErrorKind::Io, n >= 0, "{}: read failed: {}", path.string(), std::strerror(errno));
    GPUML_CHECK_KIND(ErrorKind::Io, n > 0, "{}: damaged shard: ends after {} of {} bytes", path.string(), done,
                     shard.bytes);
    done += static_cast<uint64_t>(n);
    if (direct && done % kDirectAlign != 0) break;
  }
  return std::min(done, shard.bytes);
}

}  // namespace

void read_shard_file(const fs::path& dir, const ShardFile& shard, std::vector<uint8_t>& out, bool drop_page_cache) {
  fs::path path = dir / shard.file;
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  GPUML_CHECK_KIND(ErrorKind::Io, file.fd >= 0, "{}: cannot open shard: {}", path.string(), std::strerror(errno));
  ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  out.resize(shard.bytes);
  read_range(file.fd, path, shard, out.data(), 0, shard.bytes, /*direct=*/false);
  if (drop_page_cache) ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_DONTNEED);
  check_crc(path, shard, out.data());
}

void read_shard_file(const fs::path& dir, const ShardFile& shard, HugeBuffer& out, bool direct) {
  fs::path path = dir / shard.file;
  const uint64_t aligned = (shard.bytes + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  out.reserve(aligned, /*huge_pages=*/true);  // its records are then taken in a permuted order
  uint64_t done = 0;
  if (direct) {
    FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT)};
    if (file.fd >= 0) done = read_range(file.fd, path, shard, out.data(), 0, aligned, /*direct=*/true);
  }
  if (done < shard.bytes) {  // buffered, or O_DIRECT refused (tmpfs, some network filesystems) or cut short
    FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    GPUML_CHECK_KIND(ErrorKind::Io, file.fd >= 0, "{}: cannot open shard: {}", path.string(), std::strerror(errno));
    ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    read_range(file.fd, path, shard, out.data(), done, shard.bytes, /*direct=*/false);
  }
  check_crc(path, shard, out.data());
}

void ShardDataset::read_shard(const ShardSplit& split, size_t index, std::vector<uint8_t>& out,
                              bool drop_page_cache) const {
  GPUML_CHECK(index < split.shards.size(), "split '{}' has {} shards, asked for shard {}", split.name,
              split.shards.size(), index);
  read_shard_file(dir_, split.shards[index], out, drop_page_cache);
}

void ShardDataset::read_shard(const ShardSplit& split, size_t index, HugeBuffer& out, bool direct) const {
  GPUML_CHECK(index < split.shards.size(), "split '{}' has {} shards, asked for shard {}", split.name,
              split.shards.size(), index);
  read_shard_file(dir_, split.shards[index], out, direct);
}

InMemoryDataset ShardDataset::load_split(const std::string& name, const std::string& x, const std::string& y) const {
  const ShardSplit& split = manifest_.split(name);
  const ShardField& xf = manifest_.field(x);
  const ShardField& yf = manifest_.field(y);
  GPUML_CHECK(yf.shape.empty() && is_integral(yf.dtype), "field '{}' must be an integral scalar to be a label, is {} {}",
              y, yf.dtype, shape_str(yf.shape));
  Shape shape = xf.shape;
  shape.insert(shape.begin(), split.records);
  Tensor features = Tensor::empty(shape, xf.dtype);
  Tensor labels = Tensor::empty({split.records}, yf.dtype);
  auto* fx = static_cast<uint8_t*>(features.raw_data());
  auto* fy = static_cast<uint8_t*>(labels.raw_data());
  const size_t rb = manifest_.record_bytes(), xo = manifest_.field_offset(x), yo = manifest_.field_offset(y);
  std::vector<uint8_t> buffer;
  for (size_t s = 0; s < split.shards.size(); ++s) {
    read_shard(split, s, buffer);
    for (int64_t r = 0; r < split.shards[s].records; ++r) {
      std::memcpy(fx, buffer.data() + static_cast<size_t>(r) * rb + xo, xf.bytes());
      std::memcpy(fy, buffer.data() + static_cast<size_t>(r) * rb + yo, yf.bytes());
      fx += xf.bytes();
      fy += yf.bytes();
    }
  }
  return InMemoryDataset(features, labels);
}

std::string describe_shard_dataset(const fs::path& dir) {
  ShardManifest m = read_shard_manifest(dir);
  std::string out = fmt::format("{}: {} v{}, compression {}\n", dir.string(), kShardFormatName, kShardFormatVersion,
                                m.compression);
  if (!m.source.empty()) out += fmt::format("source: {}\n", m.source);
  out += fmt::format("record: {} bytes\n", m.record_bytes());
  for (const ShardField& f : m.fields)
    out += fmt::format("  field {} {} {}\n", f.name, f.dtype_text(), shape_str(f.shape));
  if (m.vocab_size > 0)
    out += fmt::format("tokens: vocabulary of {}{}\n", m.vocab_size,
                       m.tokenizer.empty() ? std::string() : fmt::format(", tokenizer {}", m.tokenizer));
  if (m.num_classes > 0)
    out += fmt::format("classes: {}{}\n", m.num_classes,
                       m.class_names.empty() ? std::string() : fmt::format(" ({})", fmt::join(m.class_names, ", ")));
  for (const ShardSplit& s : m.splits) {
    uint64_t bytes = 0;
    for (const ShardFile& f : s.shards) bytes += f.bytes;
    out += fmt::format("split {}: {} records in {} shards, {} (largest shard {})\n", s.name, s.records,
                       s.shards.size(), format_bytes(bytes), format_bytes(s.max_shard_bytes()));
  }
  return out;
}

std::vector<ShardProblem> verify_shard_dataset(const fs::path& dir,
                                               const std::function<void(int64_t, int64_t)>& on_shard) {
  ShardManifest manifest;
  try {
    manifest = read_shard_manifest(dir);
  } catch (const Error& e) {
    return {{kShardManifestName, e.message()}};
  }
  int64_t total = 0, done = 0;
  for (const ShardSplit& split : manifest.splits) total += static_cast<int64_t>(split.shards.size());
  // Each shard is checked on its own: one damaged shard does not hide the others.
  std::vector<ShardProblem> problems;
  std::vector<uint8_t> buffer;
  for (const ShardSplit& split : manifest.splits)
    for (const ShardFile& shard : split.shards) {
      try {
        std::error_code ec;
        uint64_t size = fs::file_size(dir / shard.file, ec);
        GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: shard listed in the manifest is missing",
                         (dir / shard.file).string());
        GPUML_CHECK_KIND(ErrorKind::Io, size == shard.bytes,
                         "{}: damaged shard: {} bytes on disk, the manifest says {}", (dir / shard.file).string(),
                         size, shard.bytes);
        read_shard_file(dir, shard, buffer, /*drop_page_cache=*/true);
        if (manifest.is_token_dataset())
          check_token_ids(buffer.data(), shard.records, manifest.fields[0].token_bytes, manifest.vocab_size,
                          (dir / shard.file).string());
      } catch (const Error& e) {
        problems.push_back({shard.file, e.message()});
      }
      if (on_shard) on_shard(++done, total);
    }
  return problems;
}

}  // namespace gpuml::data
