// A file that appears complete or not at all: bytes go to a temporary file in the same
// directory, which is fsynced and renamed over the target on commit(). Dropping an uncommitted
// AtomicFile (an exception mid-write) removes the temporary and leaves the target untouched.
//
//   data::AtomicFile out("predictions.npy");
//   out.write(header.data(), header.size());
//   out.write(values, nbytes);
//   out.commit();
//
// data/ keeps this minimal writer of its own so that it does not depend on io/ (which sits
// beside it in the layer order); the two can merge once the layering settles.
#pragma once

#include <cstddef>
#include <string>

namespace gpuml::data {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* bytes, size_t n);
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace gpuml::data
