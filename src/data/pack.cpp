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
  if (options_.on_progress) options_.on_progress(done_, std::max(total_, done_));  // total_ may be an estimate (CSV)
}

std::vector<ShardField> sample_fields(DType x_dtype, const Shape& x_shape) {
  return {{"x", x_dtype, x_shape}, {"y", DType::i64, {}}};
}

std::vector<int64_t> labels_of(const Tensor& y, const std::string& what) {
  GPUML_CHECK_KIND(ErrorKind::DType, is_integral(y.dtype()), "{}: labels must be integers, got {}", what, y.dtype());
  GPUML_CHECK_SHAPE(y.ndim() == 1, "{}: labels must be (N,), got {}", what, shape_str(y.shape()));
  std::vector<int64_t> out(static_cast<size_t>(y.numel()));
  for (int64_t i = 0; i < y.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<int64_t>(y.item_as_double(i));
  return out;
}

PackReport pack_csv(const std::string& path, const fs::path& out, const PackOptions& o) {
  CsvOptions c;
  if (!o.csv_label.empty()) c.label_name = o.csv_label;
  if (!o.csv_fill.empty()) {
    GPUML_CHECK(o.csv_fill != "mean",
                "--csv-fill mean: `gpuml data pack` streams the CSV and cannot take a column's mean before "
                "writing; give --csv-fill NUMBER, or train from the .csv directly (gpuml train --csv-fill mean)");
    c.fill = FillPolicy::constant;
    try {
      size_t used = 0;
      c.fill_value = std::stod(o.csv_fill, &used);
      GPUML_CHECK(used == o.csv_fill.size(), "--csv-fill '{}': expected a number", o.csv_fill);
    } catch (const std::logic_error&) {
      GPUML_FAIL(ErrorKind::Invalid, "--csv-fill '{}': expected a number", o.csv_fill);
    }
  }
  // Streamed a block of rows at a time; the writer is made once the first block tells the schema.
  // The record count is not known up front: progress counts against an estimate from the file
  // size and the first block.
  constexpr size_t kBlockBytes = size_t{4} << 20;
  const uint64_t file_bytes = fs::file_size(path);
  std::optional<ShardWriter> w;
  std::optional<RecordSink> sink;
  CsvLayout layout;
  stream_csv(path, c, kBlockBytes, [&](const CsvLayout& l) { layout = l; },
             [&](const float* x, const int64_t* y, int64_t n) {
               if (!w) {
                 w.emplace(out, sample_fields(DType::f32, {layout.features}), o.shard_bytes);
                 w->set_source("CSV " + path);
                 const int64_t estimate = static_cast<int64_t>(
                     double(n) * double(file_bytes) / double(std::min<uint64_t>(file_bytes, kBlockBytes)));
                 sink.emplace(*w, static_cast<size_t>(layout.features) * 4, std::max<int64_t>(estimate, n), o);
                 w->begin_split("train");
               }
               sink->add_many(x, y, n);
             });
  sink->flush();
  PackReport r{w->finish(), "", {}};
  r.description = fmt::format("CSV {}: {} rows, {} features, label '{}'", path, r.manifest.split("train").records,
                              layout.features, layout.label_name);
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
  PackReport r{w.finish(), "", {}};
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
  if (!o.tokenizer.empty()) {
    GPUML_CHECK(fs::is_regular_file(input, ec), "{}: --tokenizer packs a text corpus, a file; this is not one", input);
    return pack_token_text(input, out_dir, o);
  }
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
              "--labels, .npz, .csv, an image folder, synthetic:N, or a text corpus with --tokenizer)",
              input);
  return pack_idx_pair(input, out_dir, o);
}

}  // namespace gpuml::data
