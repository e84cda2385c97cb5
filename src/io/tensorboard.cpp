#include "io/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "core/error.h"
#include "io/crc32c.h"
#include "io/proto_writer.h"

namespace gpuml {

namespace {

// Field numbers from tensorflow/core/util/event.proto and framework/summary.proto.
constexpr uint32_t kEventWallTime = 1;     // double
constexpr uint32_t kEventStep = 2;         // int64
constexpr uint32_t kEventFileVersion = 3;  // string
constexpr uint32_t kEventSummary = 5;      // Summary
constexpr uint32_t kSummaryValue = 1;      // repeated Summary.Value
constexpr uint32_t kValueTag = 1;          // string
constexpr uint32_t kValueSimpleValue = 2;  // float

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string little_endian(uint64_t value, int bytes) {
  std::string s(static_cast<size_t>(bytes), '\0');
  for (int i = 0; i < bytes; ++i) s[i] = static_cast<char>(value >> (8 * i));
  return s;
}

}  // namespace

std::string tfrecord_frame(std::string_view data) {
  std::string length = little_endian(data.size(), 8);
  std::string frame = length;
  frame += little_endian(masked_crc32c(length.data(), length.size()), 4);
  frame += data;
  frame += little_endian(masked_crc32c(data.data(), data.size()), 4);
  return frame;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& log_dir) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec, "cannot create TensorBoard log directory '{}': {}",
                   log_dir.string(), ec.message());
  const double now = unix_seconds_now();
  const std::string base =
      fmt::format("events.out.tfevents.{}.{}", static_cast<int64_t>(now), host_name());
  // Two writers started in the same second must not share a file; TensorBoard reads any file
  // whose name contains "tfevents", so a numeric suffix keeps both visible.
  for (int attempt = 0; fd_ < 0; ++attempt) {
    path_ = log_dir / (attempt == 0 ? base : fmt::format("{}.{}", base, attempt));
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
    int err = errno;
    if (fd_ < 0 && (err != EEXIST || attempt >= 1000))
      GPUML_FAIL(ErrorKind::Io, "cannot create TensorBoard event file '{}': {}", path_.string(),
                 std::strerror(err));
  }
  ProtoWriter event;
  event.add_double(kEventWallTime, now);
  event.add_string(kEventFileVersion, "brain.Event:2");
  try {
    write_record(event.bytes());
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::add_scalar(std::string_view tag, int64_t step, double value) {
  GPUML_CHECK(!tag.empty(), "TensorBoard scalar at step {}: empty tag", step);
  ProtoWriter summary_value;
  summary_value.add_string(kValueTag, tag);
  summary_value.add_float(kValueSimpleValue, static_cast<float>(value));
  ProtoWriter summary;
  summary.add_message(kSummaryValue, summary_value);
  ProtoWriter event;
  event.add_double(kEventWallTime, unix_seconds_now());
  event.add_int64(kEventStep, step);
  event.add_message(kEventSummary, summary);
  write_record(event.bytes());
}

void TensorBoardWriter::write_record(const std::string& event_bytes) {
  const std::string frame = tfrecord_frame(event_bytes);
  const char* p = frame.data();
  size_t left = frame.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0)
      GPUML_FAIL(ErrorKind::Io, "cannot write TensorBoard event file '{}': {}", path_.string(),
                 std::strerror(err));
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void TensorBoardWriter::sync() {
  int rc = ::fsync(fd_);
  int err = errno;
  GPUML_CHECK_KIND(ErrorKind::Io, rc == 0, "cannot sync TensorBoard event file '{}': {}",
                   path_.string(), std::strerror(err));
}

}  // namespace gpuml
