// One error type for all of gpuml, thrown by GPUML_CHECK with file:line and a hint.
//
//   GPUML_CHECK(a.ndim() == 2, "matmul: expected a 2-d tensor, got {} dims", a.ndim());
//   GPUML_CHECK_KIND(ErrorKind::Unsupported, ok, "no kernel for {}", name);
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace gpuml {

// The kind lets callers (CLI exit codes, tests) react without parsing messages.
enum class ErrorKind { Invalid, Shape, DType, Unsupported, OutOfMemory, Io, Internal };

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, const char* file, int line);
  ErrorKind kind() const { return kind_; }
  // The message without the "[kind] file:line" prefix, for users.
  const std::string& message() const { return message_; }

 private:
  ErrorKind kind_;
  std::string message_;
};

[[noreturn]] void throw_error(ErrorKind kind, const char* file, int line, std::string message);

}  // namespace gpuml

#define GPUML_CHECK_KIND(kind, cond, ...)                                                 \
  do {                                                                                    \
    if (!(cond)) [[unlikely]]                                                             \
      ::gpuml::throw_error((kind), __FILE__, __LINE__, ::fmt::format(__VA_ARGS__));       \
  } while (0)

#define GPUML_CHECK(cond, ...) GPUML_CHECK_KIND(::gpuml::ErrorKind::Invalid, cond, __VA_ARGS__)
#define GPUML_CHECK_SHAPE(cond, ...) GPUML_CHECK_KIND(::gpuml::ErrorKind::Shape, cond, __VA_ARGS__)
#define GPUML_FAIL(kind, ...) ::gpuml::throw_error((kind), __FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
