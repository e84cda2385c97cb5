#include "data/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace gpuml::data {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::filesystem::path target(path_);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  // fmt rather than string `+`: GCC 12 reports a false -Wrestrict on the concatenation.
  std::string pattern = fmt::format("{}/.{}.tmp.XXXXXX", dir, target.filename().string());
  fd_ = ::mkstemp(pattern.data());
  GPUML_CHECK_KIND(ErrorKind::Io, fd_ >= 0, "{}: cannot create a temporary file in {}: {}", path_, dir,
                   std::strerror(errno));
  temp_path_ = pattern;
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* bytes, size_t n) {
  GPUML_CHECK_KIND(ErrorKind::Internal, !committed_ && fd_ >= 0, "{}: write after commit", path_);
  const char* p = static_cast<const char*>(bytes);
  while (n > 0) {
    ssize_t wrote = ::write(fd_, p, n);
    if (wrote < 0 && errno == EINTR) continue;
    GPUML_CHECK_KIND(ErrorKind::Io, wrote > 0, "{}: write failed: {}", temp_path_, std::strerror(errno));
    p += wrote;
    n -= static_cast<size_t>(wrote);
  }
}

void AtomicFile::commit() {
  GPUML_CHECK_KIND(ErrorKind::Internal, !committed_ && fd_ >= 0, "{}: committed twice", path_);
  GPUML_CHECK_KIND(ErrorKind::Io, ::fsync(fd_) == 0, "{}: fsync failed: {}", temp_path_, std::strerror(errno));
  int rc = ::close(fd_);
  fd_ = -1;
  GPUML_CHECK_KIND(ErrorKind::Io, rc == 0, "{}: close failed: {}", temp_path_, std::strerror(errno));
  GPUML_CHECK_KIND(ErrorKind::Io, std::rename(temp_path_.c_str(), path_.c_str()) == 0, "{}: rename from {} failed: {}",
                   path_, temp_path_, std::strerror(errno));
  committed_ = true;
  // Persist the rename itself; a failure here leaves a complete file, so it is not an error.
  std::filesystem::path target(path_);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace gpuml::data
