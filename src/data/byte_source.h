// Sequential byte streams over a plain file or a gzip file, so that the IDX and NPY readers
// can read a header, check sizes, and only then allocate and read the payload.
//
//   std::unique_ptr<ByteSource> src = open_byte_source("train-images-idx3-ubyte.gz");
//   uint8_t magic[4];
//   read_exact(*src, magic, 4, "IDX header");   // Io error naming the file if short
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace gpuml::data {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes; returns fewer only at the end of the stream. Throws Io on read errors.
  virtual size_t read(void* dst, size_t n) = 0;
  // The file (or archive member) name used in error messages.
  virtual const std::string& name() const = 0;
  // Bytes stored on disk: the whole file for plain files, the compressed size for gzip.
  virtual uint64_t stored_size() const = 0;
  virtual bool compressed() const = 0;
};

// Opens `path`; a file that starts with the gzip magic 1f 8b is decompressed (whatever its name).
std::unique_ptr<ByteSource> open_byte_source(const std::string& path);
// Opens `path` as plain bytes, never decompressing.
std::unique_ptr<ByteSource> open_plain_source(const std::string& path);

// Reads exactly n bytes or throws an Io error "<name>: truncated <what>: expected N bytes, got M".
void read_exact(ByteSource& src, void* dst, size_t n, const char* what);
// True when the stream has no byte left (consumes at most one byte).
bool at_end(ByteSource& src);

}  // namespace gpuml::data
