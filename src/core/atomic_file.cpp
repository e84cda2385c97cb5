#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "core/error.h"

namespace gpuml {

namespace {

constexpr size_t kSinkBufferBytes = size_t{1} << 16;

std::string errno_text(int err) {
  return std::strerror(err);
}

// Writes all of `bytes`, retrying short writes and EINTR.
void write_all(int fd, const char* data, size_t bytes, const std::filesystem::path& path) {
  while (bytes > 0) {
    ssize_t n = ::write(fd, data, bytes);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      GPUML_FAIL(ErrorKind::Io, "cannot write '{}': {}", path.string(), errno_text(err));
    }
    data += n;
    bytes -= static_cast<size_t>(n);
  }
}

std::filesystem::path parent_or_dot(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

// Creates a fresh temporary file next to `target`. The name starts with a dot so that tools
// globbing the output directory skip it; O_EXCL makes the random suffix collision-safe, and
// 0666 (minus the umask) gives the final file the permissions an ordinary open would.
int create_temp_file(const std::filesystem::path& target, std::filesystem::path& temp_path) {
  std::random_device entropy;
  std::filesystem::path dir = parent_or_dot(target);
  std::string base = target.filename().string();
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint64_t suffix = (uint64_t{entropy()} << 32) ^ entropy();
    temp_path =
        dir / fmt::format(".{}.tmp.{}.{:016x}", base, static_cast<long>(::getpid()), suffix);
    int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    int err = errno;
    if (err != EEXIST)
      GPUML_FAIL(ErrorKind::Io, "cannot write '{}': creating temporary file '{}' failed: {}",
                 target.string(), temp_path.string(), errno_text(err));
  }
  GPUML_FAIL(ErrorKind::Io, "cannot write '{}': no unused temporary file name after 100 tries",
             target.string());
}

void fsync_directory(const std::filesystem::path& dir, const std::filesystem::path& target) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int open_err = errno;
  if (fd < 0)
    GPUML_FAIL(ErrorKind::Io, "wrote '{}' but cannot open its directory to sync it: {}",
               target.string(), errno_text(open_err));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems (and /proc-like mounts) do not support syncing a directory; the rename
  // has happened, so only a real I/O error is worth failing for.
  GPUML_CHECK_KIND(ErrorKind::Io, rc == 0 || err == EINVAL || err == ENOTSUP,
                   "wrote '{}' but syncing its directory failed: {}", target.string(),
                   errno_text(err));
}

}  // namespace

FileSink::FileSink(int fd, std::filesystem::path path)
    : fd_(fd), path_(std::move(path)), buffer_(kSinkBufferBytes) {}

void FileSink::write(const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  bytes_written_ += bytes;
  if (buffered_ + bytes <= buffer_.size()) {
    if (bytes > 0) std::memcpy(buffer_.data() + buffered_, p, bytes);
    buffered_ += bytes;
    return;
  }
  flush();
  if (bytes >= buffer_.size()) {  // large blocks (tensor data) skip the copy
    write_all(fd_, p, bytes, path_);
    return;
  }
  std::memcpy(buffer_.data(), p, bytes);
  buffered_ = bytes;
}

void FileSink::flush() {
  write_all(fd_, buffer_.data(), buffered_, path_);
  buffered_ = 0;
}

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(FileSink&)>& write) {
  GPUML_CHECK_KIND(ErrorKind::Io, !path.empty() && !path.filename().empty(),
                   "cannot write '{}': not a file path", path.string());
  std::filesystem::path temp_path;
  int fd = create_temp_file(path, temp_path);
  try {
    FileSink sink(fd, temp_path);
    write(sink);
    sink.flush();
    // errno is read right after each call: formatting the message may allocate and clobber it.
    int rc = ::fsync(fd);
    int err = errno;
    GPUML_CHECK_KIND(ErrorKind::Io, rc == 0, "cannot write '{}': fsync of '{}' failed: {}",
                     path.string(), temp_path.string(), errno_text(err));
    rc = ::close(fd);
    err = errno;
    fd = -1;
    GPUML_CHECK_KIND(ErrorKind::Io, rc == 0, "cannot write '{}': closing '{}' failed: {}",
                     path.string(), temp_path.string(), errno_text(err));
    rc = ::rename(temp_path.c_str(), path.c_str());
    err = errno;
    GPUML_CHECK_KIND(ErrorKind::Io, rc == 0, "cannot write '{}': renaming '{}' over it failed: {}",
                     path.string(), temp_path.string(), errno_text(err));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp_path.c_str());
    throw;
  }
  fsync_directory(parent_or_dot(path), path);
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomically(path, [&](FileSink& out) { out.write(bytes); });
}

std::string read_file_bytes(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  int open_err = errno;
  if (fd < 0)
    GPUML_FAIL(ErrorKind::Io, "cannot open '{}': {}", path.string(), errno_text(open_err));
  std::string bytes;
  char chunk[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      GPUML_FAIL(ErrorKind::Io, "cannot read '{}': {}", path.string(), errno_text(err));
    }
    if (n == 0) break;
    bytes.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

}  // namespace gpuml
