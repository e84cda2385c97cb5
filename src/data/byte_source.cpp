#include "data/byte_source.h"

#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace gpuml::data {
namespace {

uint64_t file_size_or_throw(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec && std::filesystem::exists(status), "{}: cannot open: {}", path,
                   ec ? ec.message() : std::string("no such file"));
  GPUML_CHECK_KIND(ErrorKind::Io, std::filesystem::is_regular_file(status), "{}: not a regular file", path);
  uint64_t size = std::filesystem::file_size(path, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: cannot read its size: {}", path, ec.message());
  return size;
}

class PlainFileSource final : public ByteSource {
 public:
  explicit PlainFileSource(std::string path) : path_(std::move(path)) {
    size_ = file_size_or_throw(path_);
    file_ = std::fopen(path_.c_str(), "rb");
    GPUML_CHECK_KIND(ErrorKind::Io, file_ != nullptr, "{}: cannot open: {}", path_, std::strerror(errno));
  }
  ~PlainFileSource() override { std::fclose(file_); }
  size_t read(void* dst, size_t n) override {
    size_t got = std::fread(dst, 1, n, file_);
    GPUML_CHECK_KIND(ErrorKind::Io, got == n || !std::ferror(file_), "{}: read error: {}", path_,
                     std::strerror(errno));
    return got;
  }
  const std::string& name() const override { return path_; }
  uint64_t stored_size() const override { return size_; }
  bool compressed() const override { return false; }

 private:
  std::string path_;
  uint64_t size_ = 0;
  std::FILE* file_ = nullptr;
};

class GzipFileSource final : public ByteSource {
 public:
  explicit GzipFileSource(std::string path) : path_(std::move(path)) {
    size_ = file_size_or_throw(path_);
    file_ = gzopen(path_.c_str(), "rb");
    GPUML_CHECK_KIND(ErrorKind::Io, file_ != nullptr, "{}: cannot open as gzip: {}", path_,
                     std::strerror(errno));
    gzbuffer(file_, 1 << 17);
  }
  ~GzipFileSource() override { gzclose(file_); }
  size_t read(void* dst, size_t n) override {
    size_t total = 0;
    char* out = static_cast<char*>(dst);
    while (total < n) {
      // gzread takes an unsigned int count, so large payloads go in chunks.
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - total, size_t{1} << 30));
      int got = gzread(file_, out + total, chunk);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        GPUML_FAIL(ErrorKind::Io, "{}: corrupt gzip data: {}", path_, msg ? msg : "unknown error");
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }
  const std::string& name() const override { return path_; }
  uint64_t stored_size() const override { return size_; }
  bool compressed() const override { return true; }

 private:
  std::string path_;
  uint64_t size_ = 0;
  gzFile file_ = nullptr;
};

}  // namespace

std::unique_ptr<ByteSource> open_byte_source(const std::string& path) {
  file_size_or_throw(path);
  unsigned char magic[2] = {0, 0};
  size_t got = 0;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(magic, 1, 2, f);
    std::fclose(f);
  } else {
    GPUML_FAIL(ErrorKind::Io, "{}: cannot open: {}", path, std::strerror(errno));
  }
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return std::make_unique<GzipFileSource>(path);
  return std::make_unique<PlainFileSource>(path);
}

std::unique_ptr<ByteSource> open_plain_source(const std::string& path) {
  return std::make_unique<PlainFileSource>(path);
}

void read_exact(ByteSource& src, void* dst, size_t n, const char* what) {
  size_t got = src.read(dst, n);
  GPUML_CHECK_KIND(ErrorKind::Io, got == n, "{}: truncated {}: expected {} bytes, got {}", src.name(), what,
                   n, got);
}

bool at_end(ByteSource& src) {
  unsigned char extra;
  return src.read(&extra, 1) == 0;
}

}  // namespace gpuml::data
