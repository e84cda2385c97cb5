// Internals of data/pack.h: one function per input kind, and RecordSink, which interleaves
// samples and labels into records, writes them in ~1 MiB batches and reports progress.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/pack.h"
#include "data/shard_writer.h"

namespace gpuml::data::pack_detail {

class RecordSink {
 public:
  // `total` records in all splits (for progress), `x_bytes` per sample.
  RecordSink(ShardWriter& writer, size_t x_bytes, int64_t total, const PackOptions& options);
  ~RecordSink() = default;
  void add(const void* x, int64_t y);
  void add_many(const void* x, const int64_t* y, int64_t n);  // x: n samples back to back
  void flush();

 private:
  ShardWriter& writer_;
  size_t x_bytes_;
  int64_t total_, done_ = 0;
  const PackOptions& options_;
  std::vector<uint8_t> records_;  // (pending, x_bytes + 8)
  int64_t pending_ = 0, capacity_ = 0;
};

// Labels of any integral dtype as i64 (N,); `what` names them in errors.
std::vector<int64_t> labels_of(const Tensor& y, const std::string& what);

// Fields x (dtype, shape) and y i64 ().
std::vector<ShardField> sample_fields(DType x_dtype, const Shape& x_shape);

PackReport pack_idx_dir(const std::string& dir, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_idx_pair(const std::string& images, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_npy_pair(const std::string& samples, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_npz(const std::string& path, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_csv(const std::string& path, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_image_folder(const std::string& dir, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_token_text(const std::string& corpus, const std::filesystem::path& out, const PackOptions& o);
PackReport pack_synthetic(const std::string& spec, const std::filesystem::path& out, const PackOptions& o);

}  // namespace gpuml::data::pack_detail
