// NPZ archives (numpy.savez / savez_compressed): a zip of .npy members, stored or deflated.
// Members are read into memory only after their header and declared sizes check out; names
// that could escape a directory ("../x.npy", "/abs.npy", "a\\b.npy") make the archive rejected.
//
//   data::NpzReader npz("dataset.npz");
//   for (const std::string& name : npz.names()) fmt::print("{}\n", name);   // "x", "y"
//   Tensor x = npz.read("x");                                               // or "x.npy"
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/byte_source.h"
#include "data/npy_format.h"

struct zip;

namespace gpuml::data {

class NpzReader {
 public:
  explicit NpzReader(std::string path);
  ~NpzReader();
  NpzReader(const NpzReader&) = delete;
  NpzReader& operator=(const NpzReader&) = delete;

  // Array names in archive order: each `name.npy` member without its suffix. Other members
  // (not .npy) are listed by members() but cannot be read.
  std::vector<std::string> names() const;
  const std::vector<std::string>& members() const { return members_; }
  bool contains(const std::string& name) const;
  // `name` with or without ".npy"; throws Io naming the archive and the available arrays.
  Tensor read(const std::string& name) const;

  // A member as a stream, its .npy preamble already read and checked: for arrays too large to
  // read whole (gpuml data pack reads rows from `source` a chunk at a time). The stream is
  // valid while this reader lives.
  struct Member {
    std::unique_ptr<ByteSource> source;
    NpyPreamble preamble;
  };
  Member open_member(const std::string& name) const;

 private:
  std::string path_;
  ::zip* archive_ = nullptr;
  std::vector<std::string> members_;
};

}  // namespace gpuml::data
