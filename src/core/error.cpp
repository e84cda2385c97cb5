#include "core/error.h"

#include <cstring>

namespace gpuml {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Invalid: return "invalid argument";
    case ErrorKind::Shape: return "shape error";
    case ErrorKind::DType: return "dtype error";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::OutOfMemory: return "out of memory";
    case ErrorKind::Io: return "i/o error";
    case ErrorKind::Internal: return "internal error";
  }
  return "error";
}

static const char* hint_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Shape: return "check the shapes of the inputs (printed above)";
    case ErrorKind::DType: return "cast the input to a supported dtype";
    case ErrorKind::Unsupported: return "run `gpuml info` to see backends and the ops they support";
    case ErrorKind::OutOfMemory: return "try a smaller batch, bf16 or recompute";
    case ErrorKind::Io: return "check that the file exists and is readable";
    case ErrorKind::Internal: return "this is a bug in gpuml; please report it";
    default: return nullptr;
  }
}

static std::string compose(ErrorKind kind, const std::string& message, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  std::string text = fmt::format("gpuml {}: {} ({}:{})", error_kind_name(kind), message,
                                 base ? base + 1 : file, line);
  if (const char* hint = hint_for(kind)) text += fmt::format("\n  hint: {}", hint);
  return text;
}

Error::Error(ErrorKind kind, std::string message, const char* file, int line)
    : std::runtime_error(compose(kind, message, file, line)), kind_(kind), message_(std::move(message)) {}

void throw_error(ErrorKind kind, const char* file, int line, std::string message) {
  throw Error(kind, std::move(message), file, line);
}

}  // namespace gpuml
