// .npy and .npz input for `gpuml data pack`: samples in one .npy and labels in another
// (--labels), or x_train/y_train[/x_test/y_test] (or x/y) members of an .npz. Samples whose
// stored bytes are already gpuml's (little-endian u1 f2 f4 f8 i4 i8, C order) stream in chunks
// of rows, from a file or straight out of the zip member (stored or deflated); anything else
// (big-endian, Fortran order, types that widen) is read whole through data/npy.h, so memory is
// then the array's size. Labels are read whole (8 bytes a record once decoded).
#include <filesystem>
#include <functional>
#include <optional>

#include "core/error.h"
#include "data/byte_source.h"
#include "data/npy.h"
#include "data/npy_format.h"
#include "data/npz.h"
#include "data/pack_sources.h"

namespace gpuml::data::pack_detail {

namespace fs = std::filesystem;

namespace {

bool streams_as_is(const NpyHeader& h) {
  if (h.fortran_order || h.byte_order == '>') return false;
  DType d = npy_decoded_dtype(h);
  return d != DType::boolean && dtype_size(d) == h.item_bytes;
}

Shape with_channel(Shape s) {
  if (s.size() == 2) s.insert(s.begin(), 1);
  return s;
}

// The samples' schema from an .npy header: (N, H, W) images get a channel axis, as in memory.
Shape sample_shape_of(const NpyHeader& h) { return with_channel(Shape(h.shape.begin() + 1, h.shape.end())); }

// Writes the n samples that follow an .npy preamble in `src` with their labels: in ~4 MiB
// chunks of rows when the stored bytes are gpuml's, else through `read_whole`.
void write_npy_rows(RecordSink& sink, ByteSource& src, const NpyHeader& h, const std::vector<int64_t>& labels,
                    size_t sample_bytes, const std::function<Tensor()>& read_whole) {
  const int64_t n = h.shape[0];
  if (streams_as_is(h)) {
    const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>((size_t{4} << 20) / std::max<size_t>(sample_bytes, 1)));
    std::vector<uint8_t> rows;
    for (int64_t done = 0; done < n; done += chunk) {
      int64_t k = std::min(chunk, n - done);
      rows.resize(static_cast<size_t>(k) * sample_bytes);
      read_exact(src, rows.data(), rows.size(), "NPY data");
      sink.add_many(rows.data(), labels.data() + done, k);
    }
  } else {
    Tensor x = read_whole();
    sink.add_many(x.raw_data(), labels.data(), n);
  }
  sink.flush();
}

}  // namespace

PackReport pack_npy_pair(const std::string& samples, const fs::path& out, const PackOptions& o) {
  GPUML_CHECK(!o.labels.empty(), "{}: an .npy of samples needs its labels (--labels LABELS.npy)", samples);
  const std::vector<int64_t> labels = labels_of(read_npy(o.labels), o.labels);  // small next to samples: read whole

  std::unique_ptr<ByteSource> src = open_plain_source(samples);
  NpyPreamble pre = read_npy_preamble(*src, src->stored_size());
  const NpyHeader& h = pre.header;
  GPUML_CHECK_SHAPE(!h.shape.empty(), "{}: samples must be (N, ...), got a scalar", samples);
  GPUML_CHECK_SHAPE(h.shape[0] == static_cast<int64_t>(labels.size()), "{} has {} samples but {} has {} labels",
                    samples, h.shape[0], o.labels, labels.size());
  DType dtype = npy_decoded_dtype(h);
  GPUML_CHECK_KIND(ErrorKind::DType, dtype != DType::boolean, "{}: boolean samples are not supported", samples);
  Shape sample_shape(h.shape.begin() + 1, h.shape.end());
  const int64_t n = h.shape[0];
  const size_t sample_bytes = static_cast<size_t>(numel(sample_shape)) * dtype_size(dtype);

  ShardWriter w(out, sample_fields(dtype, with_channel(sample_shape)), o.shard_bytes);
  w.set_source("NPY " + samples);
  RecordSink sink(w, sample_bytes, n, o);
  w.begin_split("train");
  write_npy_rows(sink, *src, h, labels, sample_bytes, [&] { return read_npy(samples); });
  PackReport r{w.finish(), "", {}};
  r.description = fmt::format("NPY {} + {}: {} train", samples, o.labels, n);
  return r;
}

PackReport pack_npz(const std::string& path, const fs::path& out, const PackOptions& o) {
  NpzReader npz(path);
  const bool named = npz.contains("x_train");
  const std::string xn = named ? "x_train" : "x", yn = named ? "y_train" : "y";
  GPUML_CHECK_KIND(ErrorKind::Io, npz.contains(xn) && npz.contains(yn),
                   "{}: expected arrays x_train and y_train (or x and y); it has: {}", path,
                   fmt::join(npz.names(), ", "));
  const bool has_test = named && npz.contains("x_test") && npz.contains("y_test");
  // Headers first: the schema and the record count are needed before any row is written.
  auto header_of = [&](const std::string& name) {
    NpyHeader h = npz.open_member(name).preamble.header;
    GPUML_CHECK_SHAPE(!h.shape.empty(), "{}: {} must be (N, ...), got a scalar", path, name);
    GPUML_CHECK_KIND(ErrorKind::DType, npy_decoded_dtype(h) != DType::boolean, "{}: {} is boolean", path, name);
    return h;
  };
  const NpyHeader train = header_of(xn);
  const DType dtype = npy_decoded_dtype(train);
  const Shape shape = sample_shape_of(train);
  int64_t total = train.shape[0];
  if (has_test) {
    NpyHeader test = header_of("x_test");
    GPUML_CHECK_SHAPE(sample_shape_of(test) == shape && npy_decoded_dtype(test) == dtype,
                      "{}: x_test is {} {}, x_train {} {}", path, npy_decoded_dtype(test), shape_str(test.shape), dtype,
                      shape_str(train.shape));
    total += test.shape[0];
  }
  const size_t sample_bytes = static_cast<size_t>(numel(shape)) * dtype_size(dtype);
  ShardWriter w(out, sample_fields(dtype, shape), o.shard_bytes);
  w.set_source("NPZ " + path);
  RecordSink sink(w, sample_bytes, total, o);
  auto write_split = [&](const std::string& x_name, const std::string& y_name, const std::string& split) {
    std::vector<int64_t> labels = labels_of(npz.read(y_name), path + ":" + y_name);
    NpzReader::Member m = npz.open_member(x_name);
    GPUML_CHECK_SHAPE(m.preamble.header.shape[0] == static_cast<int64_t>(labels.size()),
                      "{}: {} has {} samples but {} has {} labels", path, x_name, m.preamble.header.shape[0], y_name,
                      labels.size());
    w.begin_split(split);
    write_npy_rows(sink, *m.source, m.preamble.header, labels, sample_bytes, [&] { return npz.read(x_name); });
  };
  write_split(xn, yn, "train");
  if (has_test) write_split("x_test", "y_test", "test");
  PackReport r{w.finish(), "", {}};
  r.description = fmt::format("NPZ {}: {} train{}", path, r.manifest.split("train").records,
                              has_test ? fmt::format(", {} test", r.manifest.split("test").records) : "");
  return r;
}

}  // namespace gpuml::data::pack_detail
