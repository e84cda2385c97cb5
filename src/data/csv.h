// A CSV file of numeric features and an integer class label per row.
//
//   data::CsvOptions opt;
//   opt.label_name = "species";           // or opt.label_index = 0; default: the last column
//   opt.map_string_labels = true;         // "setosa", "virginica" -> 0, 1 (sorted unique order)
//   opt.detect_string_labels = true;      // ... only when the labels are not all integers
//   opt.fill = data::FillPolicy::mean;    // missing/non-numeric/NaN/inf -> the column mean
//   data::CsvData d = data::read_csv("iris.csv", opt);
//   // d.features (N, F) f32, d.labels (N,) i64, d.label_classes {"setosa", ...}
//
// Errors name the place: "iris.csv:12:3: value 'abc' is not a number" (line, 1-based field).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gpuml::data {

enum class CsvHeader { auto_detect, present, absent };
// What to do with a missing, non-numeric or non-finite feature value. Labels are never filled.
enum class FillPolicy { none, constant, mean };

struct CsvOptions {
  // auto_detect: the first row is a header when one of its feature fields is not a number
  // (when the label is given by name, a header is required).
  CsvHeader header = CsvHeader::auto_detect;
  std::string label_name;      // the label column by header name; takes precedence over index
  int64_t label_index = -1;    // negative counts from the end
  bool has_label = true;       // false: every column is a feature (inputs for prediction)
  bool map_string_labels = false;
  // Map string labels to ids (as map_string_labels) when a label is not a number; integer labels
  // stay ids, and a label that is a number but not an integer (a feature column, not a label) is
  // an error naming it. read_csv only: streaming has not seen every label when it must choose.
  bool detect_string_labels = false;
  // With detect_string_labels: labels that are all numbers, some of them fractional, become f32
  // values (regression targets) instead of the error above; `all` makes every label a value.
  enum class Values { never, fractional, all };
  Values label_values = Values::never;
  FillPolicy fill = FillPolicy::none;
  double fill_value = 0.0;     // for FillPolicy::constant
  char delimiter = ',';
};

struct CsvData {
  Tensor features;                          // (N, F) f32
  Tensor labels;                            // (N,) i64 ids, or f32 values (label_values); undefined when !has_label
  std::vector<std::string> feature_names;   // from the header, else "column<k>" (1-based)
  std::string label_name;
  std::vector<std::string> label_classes;   // class id -> original label, when mapped
  bool had_header = false;
};

CsvData read_csv(const std::string& path, const CsvOptions& options = {});

// What the first record of a CSV says about every row.
struct CsvLayout {
  int64_t columns = 0, features = 0, label_column = -1;
  bool had_header = false;
  std::vector<std::string> feature_names;
  std::string label_name;
};

// Reads a labelled CSV a block of about `block_bytes` at a time, for files larger than memory
// (gpuml data pack): `on_layout` once, then `on_rows(x (n, F) f32, y (n,), n)` per block. The
// parsing, header detection, fill and errors (file:line:column) are read_csv's; the policies
// that need the whole file first (FillPolicy::mean, map_string_labels) are refused.
void stream_csv(const std::string& path, const CsvOptions& options, size_t block_bytes,
                const std::function<void(const CsvLayout&)>& on_layout,
                const std::function<void(const float* x, const int64_t* y, int64_t n)>& on_rows);

}  // namespace gpuml::data
