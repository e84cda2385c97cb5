// .npy input for `gpuml data pack`: samples in one .npy, labels in another (--labels). Samples
// whose stored bytes are already gpuml's (little-endian u1 f2 f4 f8 i4 i8, C order) stream in
// chunks of rows; anything else (big-endian, Fortran order, types that widen) is read whole
// through data/npy.h, so memory is then the array's size.
#include <filesystem>

#include "core/error.h"
#include "data/byte_source.h"
#include "data/npy.h"
#include "data/npy_format.h"
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

}  // namespace

PackReport pack_npy_pair(const std::string& samples, const fs::path& out, const PackOptions& o) {
  GPUML_CHECK(!o.labels.empty(), "{}: an .npy of samples needs its labels (--labels LABELS.npy)", samples);
  Tensor y = read_npy(o.labels);  // labels are small next to samples: read whole
  GPUML_CHECK_KIND(ErrorKind::DType, is_integral(y.dtype()), "{}: labels must be integers, got {}", o.labels,
                   y.dtype());
  GPUML_CHECK_SHAPE(y.ndim() == 1, "{}: labels must be (N,), got {}", o.labels, shape_str(y.shape()));
  std::vector<int64_t> labels(static_cast<size_t>(y.numel()));
  for (int64_t i = 0; i < y.numel(); ++i) labels[static_cast<size_t>(i)] = static_cast<int64_t>(y.item_as_double(i));
  y = Tensor();

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
  if (streams_as_is(h)) {
    const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>((size_t{4} << 20) / std::max<size_t>(sample_bytes, 1)));
    std::vector<uint8_t> rows;
    for (int64_t done = 0; done < n; done += chunk) {
      int64_t k = std::min(chunk, n - done);
      rows.resize(static_cast<size_t>(k) * sample_bytes);
      read_exact(*src, rows.data(), rows.size(), "NPY data");
      sink.add_many(rows.data(), labels.data() + done, k);
    }
  } else {
    src.reset();
    Tensor x = read_npy(samples);
    sink.add_many(x.raw_data(), labels.data(), n);
  }
  sink.flush();
  PackReport r{w.finish(), ""};
  r.description = fmt::format("NPY {} + {}: {} train", samples, o.labels, n);
  return r;
}

}  // namespace gpuml::data::pack_detail
