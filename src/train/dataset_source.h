// Where training data comes from: one --data argument, resolved by what it names.
//   - a directory with the four IDX files of MNIST/Fashion-MNIST (raw or .gz): train + test;
//   - a .csv file (label column by name or index; numeric features): train only; string labels
//     ("setosa") become ids in sorted order, their names kept in class_names;
//   - a .npz archive with arrays x_train/y_train[/x_test/y_test] or x/y: train [+ test].
// Features are kept in their stored dtype (u8 for IDX images); the model's input scaling is the
// one rule of train/task.h (Task::input_normalization), applied where data meets a model. Labels are integers (class
// ids, token ids) or numbers (regression targets); the Task checks them against the model
// (train/task.h).
//
//   DatasetOptions opt;  opt.path = "/usr/share/datasets/fashion-mnist";
//   LoadedData d = load_training_data(opt);   // d.train (60000, 1, 28, 28), d.test (10000, ...)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/text.h"
#include "data/loader.h"

namespace gpuml {

struct DatasetOptions {
  std::string path;
  std::string csv_label = "";  // CSV: label column name; empty: the last column
  std::string csv_fill = "";   // CSV: "" (missing values are errors), "mean" or a number
  bool require_labels = true;  // false for prediction inputs
  // --task: a CSV's label column is read as numbers for "regression", as class ids (or names)
  // for "classification" and "language-model", and by its contents for "auto" (train/task.h).
  std::string task = "auto";
};

struct LoadedData {
  data::InMemoryDataset train;
  std::optional<data::InMemoryDataset> test;
  Shape sample_shape;       // per sample, e.g. (1, 28, 28)
  int64_t num_classes = 0;  // 1 + the largest integer label seen (0 for numeric labels)
  std::string description;  // one line for the log: "fashion-mnist IDX: 60000 train, 10000 test"
  std::vector<std::string> class_names;  // class id -> name: a CSV's string labels (sorted), else empty
};

LoadedData load_training_data(const DatasetOptions& options);
// The checks load_training_data applies to what it read (a non-empty train set, finite features,
// test samples and labels shaped as train's, integer labels small enough for class ids) and
// the class count: for data that came from elsewhere (arrays given to a Trainer).
// `path` names the data in errors.
LoadedData checked_training_data(LoadedData data, const std::string& path);

// Inputs for `gpuml predict`, told apart by their first bytes (a CSV by its name): IDX images,
// CSV rows (no label column), an .npy or .npz array, (N, ...) in their stored dtype (u8 IDX
// images, f32 CSV rows, the array's dtype); or PNG/JPEG images, a file or a directory of them,
// made into `model_input`'s (C, H, W) u8 as `data pack` makes an image folder
// (train/predict_images.h). Anything else is refused with the list of what predict reads. The
// model's input scaling is applied by the caller, by the rule of train/task.h (model_inputs).
struct PredictInputs {
  Tensor x;  // (N, ...) as stored (u8, f32, f64, i32, i64)
  std::string description;
  std::vector<std::string> files;  // image inputs: the file of each row; else empty
  std::string notes;               // image inputs: what was resized, converted or skipped
};
PredictInputs load_predict_inputs(const std::string& path, const Shape& model_input);

// A .txt file: text for a character-level language model (data/text.h), read by the Trainer and
// `gpuml eval` rather than load_training_data.
bool is_text_file(const std::string& path);
// Token data for a language model: a .txt file, or "random-tokens:VOCAB[:COUNT]" drawn from `seed`.
bool is_token_data(const std::string& path);
data::TextCorpus read_token_data(const std::string& path, int64_t block, uint64_t seed);
// Throws Invalid naming the first non-finite feature (row and position).
void check_finite(const Tensor& features, const std::string& what);

}  // namespace gpuml
