// Evaluation and prediction from a saved run: the model is rebuilt from the checkpoint alone
// (its model JSON and weights), so `gpuml eval` and `gpuml predict` need nothing else.
//
//   LoadedModel m = load_trained_model("runs/cnn-20261122");     // best.safetensors, else last
//   EvalReport r = evaluate_model(m, "/usr/share/datasets/fashion-mnist", "cpu");
//   write_predictions(m, "t10k-images-idx3-ubyte.gz", "pred.csv", "cpu", Precision::bf16);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/model.h"
#include "train/checkpoint.h"
#include "train/precision.h"
#include "train/task.h"

namespace gpuml {

struct LoadedModel {
  nn::Model model;
  Checkpoint checkpoint;
  std::string path;      // the checkpoint file read
  std::string data;      // the dataset the run trained on (from its config), may be empty
  std::vector<std::string> class_names;  // class id -> name, when the run's data named them
  std::string csv_label, csv_fill;       // how the run read a CSV (--csv-label, --csv-fill), for eval
  double val_split = 0;                  // the fraction of the data the run held out for validation
  uint64_t seed = 0;                     // which rows (data::split_train_val)
  Task task;                             // what the run trained (classification for older runs)
  int64_t batch_size = 0;                // the run's --batch-size (0: not recorded)
  std::string tokenizer_json;            // a run on a token dataset: its tokenizer (tokenizers' JSON)
};

// `path`: a run directory (best.safetensors, else last.safetensors), a checkpoint file, or an
// ONNX model (.onnx, imported by interop/onnx_import.h with its initializers as the weights).
LoadedModel load_trained_model(const std::string& path);

struct EvalReport {
  double loss = 0, metric = 0;
  std::string metric_name;  // the task's: accuracy, rmse, perplexity
  int64_t count = 0;
  // Which rows: "test split", "validation split held out by the run" (data without a test split,
  // evaluated with the run's --val-split and seed unless another --data is given), "train split".
  std::string split;
};

class ModelRunner;
// A runner for the model with the checkpoint's weights, on `device`, for eval and predict.
std::unique_ptr<ModelRunner> make_inference_runner(const LoadedModel& m, const std::string& device,
                                                   Precision precision = Precision::fp32);

// `precision` (train/precision.h) as in training: fp32 by default, whatever the run trained in.
EvalReport evaluate_model(const LoadedModel& m, const std::string& data_path, const std::string& device,
                          Precision precision = Precision::fp32);

struct PredictReport {
  int64_t count = 0;  // rows written
  std::string notes;  // image inputs: what was resized, converted or skipped (empty: nothing)
};

// Writes class probabilities and predicted labels for every input row (load_predict_inputs in
// train/dataset_source.h says what it reads), atomically:
//   .csv: header "label,p0,...,pC-1", one row per input ("label,class,p0,..." with the class
//         names when the run has them: CSV string labels, image folder names; image files get a
//         first column "file");
//   .npy: probabilities (N, C) f32, and labels (N,) i64 next to it as <stem>.labels.npy (rows in
//         the order of the files: a directory's in name order).
// A language model takes (N, T) token ids (.npy, .csv or .npz) and writes (N, T, V) per-token
// probabilities to .npy, and the most likely next tokens (N, T) as <stem>.labels.npy.
// `logits`: the model's raw outputs instead of probabilities (classification, language models).
PredictReport write_predictions(const LoadedModel& m, const std::string& input_path, const std::string& output_path,
                                const std::string& device, Precision precision = Precision::fp32, bool logits = false);

}  // namespace gpuml
