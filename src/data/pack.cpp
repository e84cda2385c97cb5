#include "data/pack.h"

#include <cstring>
#include <optional>

#include "core/error.h"
#include "core/philox.h"
#include "data/csv.h"
#include "data/npz.h"
#include "data/pack_sources.h"

namespace gpuml::data {

namespace fs = std::filesystem;

namespace pack_detail {

RecordSink::RecordSink(ShardWriter& writer, size_t x_bytes, int64_t total, const PackOptions& options)
    : writer_(writer), x_bytes_(x_bytes), total_(total), options_(options) {
  GPUML_CHECK(writer.record_bytes() == x_bytes + 8, "RecordSink: {} + 8 bytes per record, writer expects {}", x_bytes,
              writer.record_bytes());
  capacity_ = std::max<int64_t>(1, static_cast<int64_t>((size_t{1} << 20) / writer.record_bytes()));
  records_.resize(static_cast<size_t>(capacity_) * writer.record_bytes());
}

void RecordSink::add(const void* x, int64_t y) {
  uint8_t* dst = records_.data() + static_cast<size_t>(pending_) * (x_bytes_ + 8);
  std::memcpy(dst, x, x_bytes_);
  std::memcpy(dst + x_bytes_, &y, 8);
  if (++pending_ == capacity_) flush();
}

void RecordSink::add_many(const void* x, const int64_t* y, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < n; ++i) add(p + static_cast<size_t>(i) * x_bytes_, y[i]);
}

void RecordSink::flush() {
  if (pending_ == 0) return;
  writer_.write_records(records_.data(), pending_);
  done_ += pending_;
  pending_ = 0;
  if (options_.on_progress) options_.on_progress(done_, total_);
}

std::vector<ShardField> sample_fields(DType x_dtype, const Shape& x_shape) {
  return {{"x", x_dtype, x_shape}, {"y", DType::i64, {}}};
}

namespace {

// Labels of any integral dtype as i64; a label below 0 is refused (labels are class ids).
std::vector<int64_t> labels_of(const Tensor& y, const std::string& what) {
  GPUML_CHECK_KIND(ErrorKind::DType, is_integral(y.dtype()), "{}: labels must be integers, got {}", what, y.dtype());
  GPUML_CHECK_SHAPE(y.ndim() == 1, "{}: labels must be (N,), got {}", what, shape_str(y.shape()));
  std::vector<int64_t> out(static_cast<size_t>(y.numel()));
  for (int64_t i = 0; i < y.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<int64_t>(y.item_as_double(i));
  return out;
}

// One whole array pair as a split: the NPZ and CSV inputs, which are read whole anyway.
void write_tensor_split(ShardWriter& w, RecordSink& sink, const std::string& split, Tensor x, const Tensor& y,
                        const std::string& what) {
  GPUML_CHECK_SHAPE(x.ndim() >= 1 && y.ndim() == 1 && x.dim(0) == y.dim(0),
                    "{}: {} samples {} but labels {}", what, split, shape_str(x.shape()), shape_str(y.shape()));
  if (!x.is_contiguous()) x = x.reshape(x.shape());  // reshape copies a non-contiguous view
  std::vector<int64_t> labels = labels_of(y, what);
  w.begin_split(split);
  sink.add_many(x.raw_data(), labels.data(), x.dim(0));
  sink.flush();
}

}  // namespace

PackReport pack_npz(const std::string& path, const fs::path& out, const PackOptions& o) {
  NpzReader npz(path);
  bool named = npz.contains("x_train");
  std::string xn = named ? "x_train" : "x", yn = named ? "y_train" : "y";
  GPUML_CHECK_KIND(ErrorKind::Io, npz.contains(xn) && npz.contains(yn),
                   "{}: expected arrays x_train and y_train (or x and y); it has: {}", path,
                   fmt::join(npz.names(), ", "));
  bool has_test = named && npz.contains("x_test") && npz.contains("y_test");
  Tensor x = npz.read(xn), y = npz.read(yn);
  GPUML_CHECK_KIND(ErrorKind::DType, x.dtype() != DType::boolean, "{}: {} is boolean", path, xn);
  // As the in-memory path does: (N, H, W) images get a channel axis.
  auto sample_shape = [](const Tensor& t) {
    Shape s(t.shape().begin() + 1, t.shape().end());
    if (s.size() == 2) s.insert(s.begin(), 1);
    return s;
  };
  Shape shape = sample_shape(x);
  int64_t total = x.dim(0);
  std::optional<Tensor> xt, yt;
  if (has_test) {
    xt = npz.read("x_test");
    yt = npz.read("y_test");
    GPUML_CHECK_SHAPE(sample_shape(*xt) == shape && xt->dtype() == x.dtype(), "{}: x_test is {} {}, x_train {} {}",
                      path, xt->dtype(), shape_str(xt->shape()), x.dtype(), shape_str(x.shape()));
    total += xt->dim(0);
  }
  ShardWriter w(out, sample_fields(x.dtype(), shape), o.shard_bytes);
  w.set_source("NPZ " + path);
  RecordSink sink(w, static_cast<size_t>(numel(shape)) * dtype_size(x.dtype()), total, o);
  write_tensor_split(w, sink, "train", x, y, path);
  x = Tensor();  // release the training arrays before reading on
  if (has_test) write_tensor_split(w, sink, "test", *xt, *yt, path);
  PackReport r{w.finish(), ""};
  r.description = fmt::format("NPZ {}: {} train{}", path, r.manifest.split("train").records,
                              has_test ? fmt::format(", {} test", r.manifest.split("test").records) : "");
  return r;
}

PackReport pack_csv(const std::string& path, const fs::path& out, const PackOptions& o) {
  CsvOptions c;
  if (!o.csv_label.empty()) c.label_name = o.csv_label;
  CsvData csv = read_csv(path, c);
  ShardWriter w(out, sample_fields(DType::f32, {csv.features.dim(1)}), o.shard_bytes);
  w.set_source("CSV " + path);
  RecordSink sink(w, static_cast<size_t>(csv.features.dim(1)) * 4, csv.features.dim(0), o);
  write_tensor_split(w, sink, "train", csv.features, csv.labels, path);
  PackReport r{w.finish(), ""};
  r.description = fmt::format("CSV {}: {} rows, {} features, label '{}'", path, r.manifest.split("train").records,
                              csv.features.dim(1), csv.label_name);
  return r;
}

PackReport pack_synthetic(const std::string& spec, const fs::path& out, const PackOptions& o) {
  // synthetic:N[:CxHxW]
  std::string rest = spec.substr(std::strlen("synthetic:"));
  size_t colon = rest.find(':');
  int64_t n = 0;
  Shape shape = {1, 28, 28};
  try {
    n = std::stoll(rest.substr(0, colon));
    if (colon != std::string::npos) {
      shape.clear();
      std::string dims = rest.substr(colon + 1);
      for (size_t p = 0; p <= dims.size();) {
        size_t x = dims.find('x', p);
        if (x == std::string::npos) x = dims.size();
        shape.push_back(std::stoll(dims.substr(p, x - p)));
        p = x + 1;
      }
    }
  } catch (const std::exception&) {
    GPUML_FAIL(ErrorKind::Invalid, "'{}': expected synthetic:N or synthetic:N:CxHxW", spec);
  }
  GPUML_CHECK(n > 0, "'{}': N must be positive", spec);
  for (int64_t d : shape) GPUML_CHECK(d > 0, "'{}': dims must be positive", spec);
  const int64_t test = std::min<int64_t>(n / 10, 10000);
  const size_t x_bytes = static_cast<size_t>(numel(shape));
  ShardWriter w(out, sample_fields(DType::u8, shape), o.shard_bytes);
  w.set_source(spec);
  RecordSink sink(w, x_bytes, n + test, o);
  std::vector<uint8_t> sample(x_bytes + 16);
  uint64_t counter = 0;
  for (auto [split, count] : {std::pair<const char*, int64_t>{"train", n}, {"test", test}}) {
    if (count == 0) continue;
    w.begin_split(split);
    for (int64_t r = 0; r < count; ++r) {
      for (size_t i = 0; i < x_bytes; i += 16, ++counter) {
        PhiloxBlock b = philox4x32_10(counter, o.seed);
        std::memcpy(&sample[i], b.v, 16);
      }
      // A label the pixels determine, so that models can learn something from synthetic data.
      sink.add(sample.data(), static_cast<int64_t>(sample[0] % 10));
    }
    sink.flush();
  }
  PackReport r{w.finish(), ""};
  r.description = fmt::format("{}: {} train, {} test records of u8 {}", spec, n, test, shape_str(shape));
  return r;
}

}  // namespace pack_detail

PackReport pack_dataset(const std::string& input, const fs::path& out_dir, const PackOptions& o) {
  using namespace pack_detail;
  if (input.starts_with("synthetic:")) return pack_synthetic(input, out_dir, o);
  std::error_code ec;
  GPUML_CHECK_KIND(ErrorKind::Io, fs::exists(input, ec), "{}: no such file or directory", input);
  GPUML_CHECK(fs::weakly_canonical(input) != fs::weakly_canonical(out_dir), "{}: input and output are the same", input);
  if (fs::is_directory(input, ec)) {
    for (const char* stem : {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"})
      if (fs::exists(fs::path(input) / stem, ec)) return pack_idx_dir(input, out_dir, o);
    return pack_image_folder(input, out_dir, o);
  }
  std::string ext = fs::path(input).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".csv") return pack_csv(input, out_dir, o);
  if (ext == ".npz") return pack_npz(input, out_dir, o);
  if (ext == ".npy") return pack_npy_pair(input, out_dir, o);
  GPUML_CHECK(!o.labels.empty(),
              "{}: not a dataset `gpuml data pack` reads (an IDX directory or IDX file with --labels, .npy with "
              "--labels, .npz, .csv, an image folder, synthetic:N)",
              input);
  return pack_idx_pair(input, out_dir, o);
}

}  // namespace gpuml::data
