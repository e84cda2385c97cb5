// A CSV file of numeric features and an integer class label per row.
//
//   data::CsvOptions opt;
//   opt.label_name = "species";           // or opt.label_index = 0; default: the last column
//   opt.map_string_labels = true;         // "setosa", "virginica" -> 0, 1 (sorted unique order)
//   opt.fill = data::FillPolicy::mean;    // missing/non-numeric/NaN/inf -> the column mean
//   data::CsvData d = data::read_csv("iris.csv", opt);
//   // d.features (N, F) f32, d.labels (N,) i64, d.label_classes {"setosa", ...}
//
// Errors name the place: "iris.csv:12:3: value 'abc' is not a number" (line, 1-based field).
#pragma once

#include <cstdint>
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
  FillPolicy fill = FillPolicy::none;
  double fill_value = 0.0;     // for FillPolicy::constant
  char delimiter = ',';
};

struct CsvData {
  Tensor features;                          // (N, F) f32
  Tensor labels;                            // (N,) i64; undefined when !has_label
  std::vector<std::string> feature_names;   // from the header, else "column<k>" (1-based)
  std::string label_name;
  std::vector<std::string> label_classes;   // class id -> original label, when mapped
  bool had_header = false;
};

CsvData read_csv(const std::string& path, const CsvOptions& options = {});

}  // namespace gpuml::data
