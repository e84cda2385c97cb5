// Streaming IDX input for `gpuml data pack`: the header is parsed once, then records are read
// and decoded a chunk at a time, so a file of any size packs in a few MiB of memory.
#include <cstring>
#include <memory>

#include "core/error.h"
#include "data/byte_source.h"
#include "data/pack_sources.h"

namespace gpuml::data::pack_detail {

namespace fs = std::filesystem;

namespace {

class IdxStream {
 public:
  explicit IdxStream(const std::string& path) : src_(open_byte_source(path)), path_(path) {
    uint8_t magic[4];
    read_exact(*src_, magic, 4, "IDX header");
    GPUML_CHECK_KIND(ErrorKind::Io, magic[0] == 0 && magic[1] == 0, "{}: not an IDX file (magic {:02x} {:02x})", path,
                     magic[0], magic[1]);
    code_ = magic[2];
    switch (code_) {
      case 0x08: item_ = 1, dtype_ = DType::u8; break;
      case 0x09: item_ = 1, dtype_ = DType::i32; break;
      case 0x0B: item_ = 2, dtype_ = DType::i32; break;
      case 0x0C: item_ = 4, dtype_ = DType::i32; break;
      case 0x0D: item_ = 4, dtype_ = DType::f32; break;
      case 0x0E: item_ = 8, dtype_ = DType::f64; break;
      default: GPUML_FAIL(ErrorKind::Io, "{}: unknown IDX element type 0x{:02x}", path, code_);
    }
    int ndims = magic[3];
    GPUML_CHECK_KIND(ErrorKind::Io, ndims >= 1 && ndims <= 8, "{}: IDX header has {} dims", path, ndims);
    for (int d = 0; d < ndims; ++d) {
      uint8_t b[4];
      read_exact(*src_, b, 4, "IDX dimensions");
      int64_t dim = (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
      GPUML_CHECK_KIND(ErrorKind::Io, d == 0 || dim > 0, "{}: IDX dim {} is 0", path, d);
      shape_.push_back(dim);
    }
    uint64_t payload = static_cast<uint64_t>(numel(shape_)) * item_;
    if (!src_->compressed())
      GPUML_CHECK_KIND(ErrorKind::Io, src_->stored_size() == payload + 4 + 4 * static_cast<uint64_t>(ndims),
                       "{}: IDX dims {} need {} bytes of data, the file holds {}", path, shape_str(shape_), payload,
                       src_->stored_size() - 4 - 4 * static_cast<uint64_t>(ndims));
  }

  int64_t count() const { return shape_[0]; }
  Shape sample_shape() const { return Shape(shape_.begin() + 1, shape_.end()); }
  DType dtype() const { return dtype_; }
  size_t sample_bytes() const { return static_cast<size_t>(numel(sample_shape())) * dtype_size(dtype_); }

  // Reads n samples, decoded to dtype() in native byte order, into dst.
  void read(void* dst, int64_t n) {
    size_t elems = static_cast<size_t>(n * numel(sample_shape()));
    raw_.resize(elems * item_);
    read_exact(*src_, raw_.data(), raw_.size(), "IDX data");
    auto be = [&](size_t i) {
      uint64_t v = 0;
      for (size_t k = 0; k < item_; ++k) v = (v << 8) | raw_[i * item_ + k];
      return v;
    };
    if (code_ == 0x08) {
      std::memcpy(dst, raw_.data(), elems);
    } else if (dtype_ == DType::i32) {
      auto* out = static_cast<int32_t*>(dst);
      for (size_t i = 0; i < elems; ++i) {
        uint64_t v = be(i);
        out[i] = item_ == 1 ? static_cast<int8_t>(v) : item_ == 2 ? static_cast<int16_t>(v) : static_cast<int32_t>(v);
      }
    } else if (dtype_ == DType::f32) {
      auto* out = static_cast<float*>(dst);
      for (size_t i = 0; i < elems; ++i) {
        auto bits = static_cast<uint32_t>(be(i));
        std::memcpy(&out[i], &bits, 4);
      }
    } else {
      auto* out = static_cast<double*>(dst);
      for (size_t i = 0; i < elems; ++i) {
        uint64_t bits = be(i);
        std::memcpy(&out[i], &bits, 8);
      }
    }
  }
  void read_labels(int64_t* dst, int64_t n) {
    GPUML_CHECK_KIND(ErrorKind::DType, dtype_ == DType::u8 || dtype_ == DType::i32,
                     "{}: labels must be integers, the file holds {}", path_, dtype_);
    std::vector<uint8_t> tmp(static_cast<size_t>(n) * dtype_size(dtype_));
    read(tmp.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      if (dtype_ == DType::u8) dst[i] = tmp[static_cast<size_t>(i)];
      else dst[i] = reinterpret_cast<const int32_t*>(tmp.data())[i];
    }
  }

 private:
  std::unique_ptr<ByteSource> src_;
  std::string path_;
  uint8_t code_ = 0;
  size_t item_ = 1;
  DType dtype_ = DType::u8;
  Shape shape_;
  std::vector<uint8_t> raw_;
};

// (N, H, W) images get a channel axis, as the in-memory IDX path gives them.
Shape with_channel(Shape s) {
  if (s.size() == 2) s.insert(s.begin(), 1);
  return s;
}

void pack_stream_pair(IdxStream& x, IdxStream& y, ShardWriter& w, RecordSink& sink, const std::string& split,
                      const std::string& xpath, const std::string& ypath) {
  GPUML_CHECK_SHAPE(y.sample_shape().empty(), "{}: labels must be (N,), got (N, {})", ypath,
                    shape_str(y.sample_shape()));
  GPUML_CHECK_SHAPE(x.count() == y.count(), "{} has {} samples but {} has {} labels", xpath, x.count(), ypath,
                    y.count());
  w.begin_split(split);
  const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>((size_t{4} << 20) / std::max<size_t>(x.sample_bytes(), 1)));
  std::vector<uint8_t> samples;
  std::vector<int64_t> labels;
  for (int64_t done = 0; done < x.count(); done += chunk) {
    int64_t n = std::min(chunk, x.count() - done);
    samples.resize(static_cast<size_t>(n) * x.sample_bytes());
    labels.resize(static_cast<size_t>(n));
    x.read(samples.data(), n);
    y.read_labels(labels.data(), n);
    sink.add_many(samples.data(), labels.data(), n);
  }
  sink.flush();
}

std::string find_member(const fs::path& dir, const std::string& stem) {
  for (const std::string& name : {stem, stem + ".gz"})
    if (fs::is_regular_file(dir / name)) return (dir / name).string();
  GPUML_FAIL(ErrorKind::Io, "{}: missing {}[.gz] (an MNIST-style IDX directory has train-images-idx3-ubyte, "
             "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)", dir.string(), stem);
}

}  // namespace

PackReport pack_idx_dir(const std::string& dir, const fs::path& out, const PackOptions& o) {
  std::string paths[4] = {find_member(dir, "train-images-idx3-ubyte"), find_member(dir, "train-labels-idx1-ubyte"),
                          find_member(dir, "t10k-images-idx3-ubyte"), find_member(dir, "t10k-labels-idx1-ubyte")};
  IdxStream xs(paths[0]), ys(paths[1]), xt(paths[2]), yt(paths[3]);
  GPUML_CHECK_SHAPE(xs.sample_shape() == xt.sample_shape() && xs.dtype() == xt.dtype(),
                    "{}: train samples are {} {}, test samples {} {}", dir, xs.dtype(), shape_str(xs.sample_shape()),
                    xt.dtype(), shape_str(xt.sample_shape()));
  ShardWriter w(out, sample_fields(xs.dtype(), with_channel(xs.sample_shape())), o.shard_bytes);
  w.set_source("IDX " + dir);
  RecordSink sink(w, xs.sample_bytes(), xs.count() + xt.count(), o);
  pack_stream_pair(xs, ys, w, sink, "train", paths[0], paths[1]);
  pack_stream_pair(xt, yt, w, sink, "test", paths[2], paths[3]);
  PackReport r{w.finish(), "", {}};
  r.description = fmt::format("IDX {}: {} train, {} test", dir, xs.count(), xt.count());
  return r;
}

PackReport pack_idx_pair(const std::string& images, const fs::path& out, const PackOptions& o) {
  IdxStream xs(images), ys(o.labels);
  ShardWriter w(out, sample_fields(xs.dtype(), with_channel(xs.sample_shape())), o.shard_bytes);
  w.set_source("IDX " + images);
  RecordSink sink(w, xs.sample_bytes(), xs.count(), o);
  pack_stream_pair(xs, ys, w, sink, "train", images, o.labels);
  PackReport r{w.finish(), "", {}};
  r.description = fmt::format("IDX {} + {}: {} train", images, o.labels, xs.count());
  return r;
}

}  // namespace gpuml::data::pack_detail
