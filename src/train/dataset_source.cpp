#include "train/dataset_source.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "data/csv.h"
#include "data/idx.h"
#include "data/idx_dataset.h"
#include "data/npy.h"
#include "data/npz.h"
#include "train/predict_images.h"
#include "train/task.h"

namespace gpuml {

namespace fs = std::filesystem;

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// The largest integer label (-1 for none, and for values: regression targets have no classes).
int64_t max_label(const Tensor& labels, const std::string& what) {
  if (labels.dtype() != DType::i64) return -1;
  const int64_t* y = labels.data<int64_t>();
  const int64_t per_row = labels.dim(0) > 0 ? labels.numel() / labels.dim(0) : 1;
  int64_t best = -1;
  for (int64_t i = 0; i < labels.numel(); ++i) {
    GPUML_CHECK(y[i] <= kMaxClassId, "{}: label {} in row {} is too large for a class id (at most {})", what, y[i],
                i / per_row, kMaxClassId);
    best = std::max(best, y[i]);
  }
  return best;
}

// Images come as (N, H, W) u8: add the channel dim the convolutional models expect.
data::InMemoryDataset with_channel(const data::InMemoryDataset& d) {
  Shape s = d.sample_shape();
  if (s.size() == 2) return d.reshape_samples({1, s[0], s[1]});
  return d;
}

LoadedData from_idx_dir(const std::string& dir) {
  data::IdxDataset raw = data::load_idx_dataset(dir);
  LoadedData out{with_channel(data::InMemoryDataset(raw.train_x, raw.train_y)), std::nullopt, {}, 0, "", {}};
  out.test = with_channel(data::InMemoryDataset(raw.test_x, raw.test_y));
  out.description = fmt::format("IDX {}: {} train, {} test", dir, out.train.size(), out.test->size());
  return out;
}

LoadedData from_csv(const DatasetOptions& o) {
  data::CsvOptions c;
  if (!o.csv_label.empty()) c.label_name = o.csv_label;
  if (o.csv_fill == "mean") {
    c.fill = data::FillPolicy::mean;
  } else if (!o.csv_fill.empty()) {
    c.fill = data::FillPolicy::constant;
    try {
      c.fill_value = std::stod(o.csv_fill);
    } catch (const std::exception&) {
      GPUML_FAIL(ErrorKind::Invalid, "--csv-fill '{}': expected 'mean' or a number", o.csv_fill);
    }
  }
  c.detect_string_labels = true;
  // Numbers with fractions are regression targets unless the task says classification.
  c.label_values = o.task == "regression"                                ? data::CsvOptions::Values::all
                   : o.task == "auto" || o.task.empty() ? data::CsvOptions::Values::fractional
                                                                         : data::CsvOptions::Values::never;
  data::CsvData csv = data::read_csv(o.path, c);
  // A label-first file (MNIST as CSV: label,pixel1,...) read with the default last column would
  // train on a pixel as the label: refuse it, naming the flag that picks the column.
  if (o.csv_label.empty() && csv.had_header && !csv.feature_names.empty()) {
    std::string first = csv.feature_names.front();
    for (char& ch : first) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    GPUML_CHECK(first != "label" && first != "labels" && first != "class" && first != "target" && first != "y",
                "--data {}: the label column defaults to the last one ('{}'), but the first column is named '{}': "
                "give --csv-label {} to train on it",
                o.path, csv.label_name, csv.feature_names.front(), csv.feature_names.front());
  }
  LoadedData out{data::InMemoryDataset(csv.features, csv.labels), std::nullopt, {}, 0, "", csv.label_classes};
  out.description = fmt::format("CSV {}: {} rows, {} features, label '{}'{}", o.path, out.train.size(),
                                csv.features.dim(1), csv.label_name,
                                csv.label_classes.empty()
                                    ? std::string()
                                    : fmt::format(" ({} classes by name: {})", csv.label_classes.size(),
                                                  fmt::join(csv.label_classes, ", ")));
  return out;
}

LoadedData from_npz(const std::string& path) {
  data::NpzReader npz(path);
  auto pick = [&](std::initializer_list<const char*> names) -> std::optional<Tensor> {
    for (const char* n : names)
      if (npz.contains(n)) return npz.read(n);
    return std::nullopt;
  };
  std::optional<Tensor> x = pick({"x_train", "x"}), y = pick({"y_train", "y"});
  GPUML_CHECK(x && y, "{}: expected arrays x_train and y_train (or x and y); it has: {}", path,
              fmt::join(npz.names(), ", "));
  LoadedData out{with_channel(data::InMemoryDataset(*x, *y)), std::nullopt, {}, 0, "", {}};
  std::optional<Tensor> xt = pick({"x_test"}), yt = pick({"y_test"});
  GPUML_CHECK(xt.has_value() == yt.has_value(), "{}: has one of x_test/y_test but not the other", path);
  if (xt) out.test = with_channel(data::InMemoryDataset(*xt, *yt));
  out.description = fmt::format("NPZ {}: {} train{}", path, out.train.size(),
                                out.test ? fmt::format(", {} test", out.test->size()) : "");
  return out;
}

}  // namespace

bool is_text_file(const std::string& path) { return lower_extension(path) == ".txt" && fs::is_regular_file(path); }

bool is_token_data(const std::string& path) { return data::is_random_tokens(path) || is_text_file(path); }

data::TextCorpus read_token_data(const std::string& path, int64_t block, uint64_t seed) {
  return data::is_random_tokens(path) ? data::random_token_corpus(path, block, seed) : data::read_text_corpus(path, block);
}

void check_finite(const Tensor& features, const std::string& what) {
  if (!is_floating(features.dtype())) return;
  int64_t per_row = features.ndim() > 0 && features.dim(0) > 0 ? features.numel() / features.dim(0) : 1;
  dispatch_dtype(features.dtype(), [&]<typename T>(T) {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const T* p = static_cast<const T*>(features.raw_data());
      for (int64_t i = 0; i < features.numel(); ++i)
        GPUML_CHECK(std::isfinite(p[i]), "{}: row {} holds a non-finite value ({}) at feature {}", what,
                    i / per_row, p[i], i % per_row);
    }
  });
}

LoadedData load_training_data(const DatasetOptions& o) {
  // Named by its path, not a flag: Python's fit(path) and the C++ API's Settings::data land here too.
  GPUML_CHECK_KIND(ErrorKind::Io, fs::exists(o.path), "{}: no such file or directory (the training data)", o.path);
  LoadedData out = [&] {
    if (fs::is_directory(o.path)) return from_idx_dir(o.path);
    std::string ext = lower_extension(o.path);
    if (ext == ".csv") return from_csv(o);
    if (ext == ".npz") return from_npz(o.path);
    GPUML_FAIL(ErrorKind::Invalid,
               "--data {}: not a dataset gpuml reads (a directory of IDX files, a .csv or an .npz file; a .txt "
               "file trains a language model)", o.path);
  }();
  GPUML_CHECK(out.train.size() > 0, "--data {}: the training set is empty", o.path);
  return checked_training_data(std::move(out), o.path);
}

LoadedData checked_training_data(LoadedData out, const std::string& path) {
  GPUML_CHECK(out.train.size() > 0, "{}: the training set is empty", path);
  out.sample_shape = out.train.sample_shape();
  check_finite(out.train.features(), path);
  out.num_classes = max_label(out.train.labels(), path) + 1;
  if (out.test) {
    GPUML_CHECK_SHAPE(out.test->sample_shape() == out.sample_shape, "{}: test samples are {}, train samples {}",
                      path, shape_str(out.test->sample_shape()), shape_str(out.sample_shape));
    check_finite(out.test->features(), path + " (test)");
    GPUML_CHECK_SHAPE(out.test->label_shape() == out.train.label_shape(), "{}: test labels are {} per row, train labels {}",
                      path, shape_str(out.test->label_shape()), shape_str(out.train.label_shape()));
    out.num_classes = std::max(out.num_classes, max_label(out.test->labels(), path + " (test)") + 1);
  }
  return out;
}

namespace {

// What predict reads, for the message when it cannot.
constexpr const char* kPredictFormats =
    "predict reads IDX images (raw or .gz), PNG or JPEG images (a file, or a directory of .png/.jpg/.jpeg files), a "
    ".csv of feature rows, an .npy array, or an .npz (array x, x_test or its only array)";

enum class InputKind { idx, idx_gz, npy, npz, csv, png, jpeg, unknown };

// By the first bytes, then by the name (a CSV has no magic).
InputKind input_kind(const std::string& path) {
  unsigned char magic[6] = {};
  size_t got = 0;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(magic, 1, sizeof magic, f);
    std::fclose(f);
  }
  auto starts = [&](std::initializer_list<int> bytes) {
    size_t i = 0;
    for (int b : bytes)
      if (i >= got || magic[i++] != b) return false;
    return true;
  };
  if (starts({0x93, 'N', 'U', 'M', 'P', 'Y'})) return InputKind::npy;
  if (starts({'P', 'K', 0x03, 0x04}) || starts({'P', 'K', 0x05, 0x06})) return InputKind::npz;
  if (starts({0x89, 'P', 'N', 'G'})) return InputKind::png;
  if (starts({0xFF, 0xD8, 0xFF})) return InputKind::jpeg;
  if (starts({0x1F, 0x8B})) return InputKind::idx_gz;
  if (got >= 4 && magic[0] == 0 && magic[1] == 0 && magic[2] >= 0x08 && magic[2] <= 0x0E) return InputKind::idx;
  if (lower_extension(path) == ".csv") return InputKind::csv;
  return InputKind::unknown;
}

Tensor read_npz_inputs(const std::string& path) {
  data::NpzReader npz(path);
  for (const char* name : {"x", "x_test"})
    if (npz.contains(name)) return npz.read(name);
  std::vector<std::string> names = npz.names();
  GPUML_CHECK_KIND(ErrorKind::Io, names.size() == 1,
                   "{}: an .npz to predict on needs an array named x or x_test, or a single array; it has: {}", path,
                   fmt::join(names, ", "));
  return npz.read(names.front());
}

}  // namespace

PredictInputs load_predict_inputs(const std::string& path, const Shape& model_input) {
  GPUML_CHECK_KIND(ErrorKind::Io, fs::exists(path), "{}: no such file", path);
  // Images are made into the model's input shape, as `data pack` makes an image folder into records.
  auto images = [&] {
    ImageInputs in = load_image_inputs(path, model_input);
    std::string description = fmt::format("{} {}", path, shape_str(in.x.shape()));
    return PredictInputs{std::move(in.x), std::move(description), std::move(in.files), std::move(in.notes)};
  };
  if (fs::is_directory(path)) {
    bool any_image = false;
    for (const fs::directory_entry& e : fs::directory_iterator(path))
      any_image |= has_image_extension(e.path().string());
    GPUML_CHECK_KIND(ErrorKind::Io, any_image, "{}: is a directory without .png/.jpg/.jpeg files; {}", path,
                     kPredictFormats);
    return images();
  }
  Tensor x;
  switch (input_kind(path)) {
    case InputKind::csv: {
      data::CsvOptions c;
      c.has_label = false;
      x = data::read_csv(path, c).features;
      break;
    }
    case InputKind::npy:
      x = data::read_npy(path);
      break;
    case InputKind::npz:
      x = read_npz_inputs(path);
      break;
    case InputKind::idx:
    case InputKind::idx_gz:
      x = data::read_idx(path);
      if (x.ndim() == 3) x = x.reshape({x.dim(0), 1, x.dim(1), x.dim(2)});
      break;
    case InputKind::png:
    case InputKind::jpeg:
      return images();
    case InputKind::unknown:
      GPUML_FAIL(ErrorKind::Io, "{}: not a format predict recognises (by its first bytes or its name); {}", path,
                 kPredictFormats);
  }
  GPUML_CHECK(x.ndim() >= 1 && x.dim(0) > 0, "{}: no rows to predict", path);
  GPUML_CHECK_KIND(ErrorKind::DType, x.dtype() != DType::boolean && x.dtype() != DType::bf16,
                   "{}: inputs of dtype {} are not supported", path, x.dtype());
  check_finite(x, path);
  return {x, fmt::format("{} {}", path, shape_str(x.shape())), {}, {}};
}

}  // namespace gpuml
