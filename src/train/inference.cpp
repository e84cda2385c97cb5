#include "train/inference.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_read.h"
#include "data/npy.h"
#include "data/shard_format.h"
#include "data/text.h"
#include "data/token_shards.h"
#include "interop/onnx_import.h"
#include "train/dataset_source.h"
#include "train/model_runner.h"
#include "train/shard_source.h"
#include "train/device_choice.h"
#include "train/training_data.h"

namespace gpuml {

namespace fs = std::filesystem;

LoadedModel load_trained_model(const std::string& path) {
  fs::path p = path;
  if (p.extension() == ".onnx") {  // a model from elsewhere: the graph and its initializers
    interop::ImportedModel imported = interop::import_onnx_file(p);
    Checkpoint c;
    c.model = std::move(imported.weights);
    c.model_json = imported.model.to_json().dump();
    return {std::move(imported.model), std::move(c), p.string(), "", {}, "", "", 0, 0, Task(), 0, ""};
  }
  // Messages name the path, not a flag: the CLI (--checkpoint), the C++ API and Python (gpuml.load) all land here.
  GPUML_CHECK_KIND(ErrorKind::Io, fs::exists(p),
                   "{}: no such file or directory, so no checkpoint to load (give a run directory, a .safetensors "
                   "checkpoint or an .onnx model)", path);
  if (fs::is_directory(p)) {
    GPUML_CHECK_KIND(ErrorKind::Io, fs::exists(p / "best.safetensors") || fs::exists(p / "last.safetensors"),
                     "{}: no checkpoint in this directory (a run directory holds best.safetensors or "
                     "last.safetensors)", path);
    p = fs::exists(p / "best.safetensors") ? p / "best.safetensors" : p / "last.safetensors";
  }
  Checkpoint c = load_checkpoint(p);
  nlohmann::json model_json = parse_json(c.model_json, p.string() + ": the model description");
  LoadedModel m{nn::Model::from_json(model_json), std::move(c), p.string(), "", {}, "", "", 0, 0, Task(), 0, ""};
  if (!m.checkpoint.config_json.empty()) {
    auto cfg = nlohmann::json::parse(m.checkpoint.config_json, nullptr, false);
    if (cfg.is_object() && cfg.contains("val_split") && cfg["val_split"].is_number()) m.val_split = cfg["val_split"];
    if (cfg.is_object() && cfg.contains("seed") && cfg["seed"].is_number_unsigned()) m.seed = cfg["seed"];
    if (cfg.is_object() && cfg.contains("data") && cfg["data"].is_string()) m.data = cfg["data"];
    if (cfg.is_object() && cfg.contains("batch_size") && cfg["batch_size"].is_number_integer())
      m.batch_size = cfg["batch_size"];
    if (cfg.is_object() && cfg.contains("csv_label") && cfg["csv_label"].is_string()) m.csv_label = cfg["csv_label"];
    if (cfg.is_object() && cfg.contains("csv_fill") && cfg["csv_fill"].is_string()) m.csv_fill = cfg["csv_fill"];
    if (cfg.is_object() && cfg.contains("task") && cfg["task"].is_string()) {
      const std::string task = cfg["task"];
      check_task_name(task);
      const int64_t ignore = cfg.contains("ignore_index") && cfg["ignore_index"].is_number_integer()
                                 ? cfg["ignore_index"].get<int64_t>()
                                 : -100;
      m.task = Task(task == "regression"       ? TaskKind::regression
                    : task == "language-model" ? TaskKind::language_model
                                               : TaskKind::classification,
                    ignore);
    }
    if (cfg.is_object() && cfg.contains("tokenizer") && cfg["tokenizer"].is_object())
      m.tokenizer_json = cfg["tokenizer"].dump();
    if (cfg.is_object() && cfg.contains("class_names") && cfg["class_names"].is_array())
      for (const auto& name : cfg["class_names"])
        if (name.is_string()) m.class_names.push_back(name.get<std::string>());
  }
  return m;
}

std::unique_ptr<ModelRunner> make_inference_runner(const LoadedModel& m, const std::string& device,
                                                   Precision precision) {
  auto runner = std::make_unique<ModelRunner>(m.model, optim::OptimizerConfig{}, plan_options_for_device(device), 0,
                                              precision, m.task);
  runner->load(m.checkpoint.model, {});
  return runner;
}

namespace {

// A class name as one CSV field: quoted when it holds a comma, quote or newline (RFC 4180).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void check_input_shape(const LoadedModel& m, const Shape& sample, const std::string& what) {
  GPUML_CHECK_SHAPE(sample == m.model.input_shape(), "{}: samples have shape {} but the model takes {}", what,
                    shape_str(sample), shape_str(m.model.input_shape()));
}

// A regression's predictions: (N, K...) values, one row per input ("value" or y0..yK-1 columns).
PredictReport write_values(const Tensor& values, PredictInputs& in, const std::string& output_path) {
  const int64_t n = values.dim(0), k = n > 0 ? values.numel() / n : 0;
  if (fs::path(output_path).extension() == ".npy") {
    data::write_npy(output_path, values);
    return {n, std::move(in.notes)};
  }
  std::vector<double> v = values.to_doubles();
  std::string text = in.files.empty() ? "" : "file,";
  for (int64_t c = 0; c < k; ++c) text += k == 1 ? fmt::format("value") : fmt::format("{}y{}", c ? "," : "", c);
  text += '\n';
  for (int64_t i = 0; i < n; ++i) {
    if (!in.files.empty()) text += csv_field(in.files[static_cast<size_t>(i)]) + ",";
    for (int64_t c = 0; c < k; ++c) text += fmt::format("{}{:.9g}", c ? "," : "", v[static_cast<size_t>(i * k + c)]);
    text += '\n';
  }
  write_file_atomically(output_path, text);
  return {n, std::move(in.notes)};
}

// A language model's predictions: for (N, T) token ids, per-token probabilities (or logits)
// (N, T, V) as .npy and the most likely next token (N, T) as <stem>.labels.npy.
PredictReport write_token_predictions(const LoadedModel& m, PredictInputs& in, const std::string& output_path,
                                      const std::string& device, Precision precision, bool logits) {
  GPUML_CHECK(fs::path(output_path).extension() == ".npy",
              "--output {}: a language model predicts (N, T, V) per token; write them to an .npy file", output_path);
  const int64_t vocab = m.model.output_shape().back();
  const std::vector<double> ids = in.x.to_doubles();
  for (size_t i = 0; i < ids.size(); ++i)
    GPUML_CHECK(ids[i] >= 0 && ids[i] < static_cast<double>(vocab) && ids[i] == std::floor(ids[i]),
                "{}: value {} at row {}, position {} is not a token id of the model's vocabulary [0, {})",
                in.description, ids[i], static_cast<int64_t>(i) / in.x.dim(1), static_cast<int64_t>(i) % in.x.dim(1),
                vocab);
  Tensor out = make_inference_runner(m, device, precision)
                   ->predict(in.x, m.task.eval_batch_rows(m.batch_size), logits);  // (N, T, V)
  const int64_t rows = out.numel() / vocab;
  const std::vector<double> p = out.to_doubles();
  std::vector<double> labels(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = p.data() + r * vocab;
    labels[static_cast<size_t>(r)] = static_cast<double>(std::max_element(row, row + vocab) - row);
  }
  data::write_npy(fs::path(output_path).replace_extension(".labels.npy").string(),
                  Tensor::from_values({in.x.dim(0), in.x.dim(1)}, labels, DType::i64));
  data::write_npy(output_path, out);
  return {in.x.dim(0), std::move(in.notes)};
}

}  // namespace

EvalReport evaluate_model(const LoadedModel& m, const std::string& data_path, const std::string& device,
                          Precision precision) {
  std::string path = data_path.empty() ? m.data : data_path;
  GPUML_CHECK(!path.empty(), "no --data given and the checkpoint does not say what it trained on");
  // Features scaled by the one input rule for their dtype (train/task.h), as training scaled them.
  auto score = [&](const data::InMemoryDataset& given, const char* split) {
    check_input_shape(m, given.sample_shape(), path);
    const data::InMemoryDataset set = m.task.prepare(given, m.model, path);
    TaskSums s = make_inference_runner(m, device, precision)->evaluate(normalised(set, m.task).first, set.labels(),
                                                                           m.task.eval_batch_rows(m.batch_size));
    return EvalReport{m.task.mean_loss(s), m.task.metric(s), m.task.metric_name(), s.rows, split};
  };
  if (is_token_data(path)) {  // a language model: the text's (tokens') last 10%, as training split it
    const data::TextCorpus text = read_token_data(path, m.model.input_shape().at(0), m.seed);
    return score(data::text_windows(text.validation, m.model.input_shape()[0]),
                 data::is_random_tokens(path) ? "validation split: the last 10% of the tokens"
                                              : "validation split: the last 10% of the text");
  }
  if (data::is_token_dataset(path))  // a token dataset: its validation split, as training evaluated
    return score(data::text_windows(data::read_token_split(path, "validation"), m.model.input_shape().at(0)),
                 "validation split of the token dataset");
  if (data::is_shard_dataset(path))  // trained from shards (gpuml data pack): their test split
    return score(load_shard_test_split(path), "test split");
  // A CSV is read as the run read it: the same label column, the same fill.
  LoadedData d = load_training_data({path, m.csv_label, m.csv_fill, true, m.task.name()});
  if (d.test) return score(*d.test, "test split");
  // The rows the run held out (the same split of the same data), never the ones it trained on.
  if (data_path.empty() && m.val_split > 0)
    return score(data::split_train_val(d.train, m.val_split, m.seed).val, "validation split held out by the run");
  return score(d.train, "train split");
}

PredictReport write_predictions(const LoadedModel& m, const std::string& input_path, const std::string& output_path,
                                const std::string& device, Precision precision, bool logits) {
  std::string ext = fs::path(output_path).extension().string();
  GPUML_CHECK(ext == ".csv" || ext == ".npy", "--output {}: expected a .csv or .npy file name", output_path);
  PredictInputs in = load_predict_inputs(input_path, m.model.input_shape());
  Shape sample(in.x.shape().begin() + 1, in.x.shape().end());
  // CSV rows are flat; a model on images takes them when the sizes agree.
  if (sample != m.model.input_shape() && numel(sample) == numel(m.model.input_shape())) {
    Shape s{in.x.dim(0)};
    for (int64_t d : m.model.input_shape()) s.push_back(d);
    in.x = in.x.reshape(s);
    sample = m.model.input_shape();
  }
  check_input_shape(m, sample, input_path);
  GPUML_CHECK(!logits || m.task.kind() != TaskKind::regression,
              "--logits: {} is a regression model, whose outputs are its values already; drop --logits", m.path);
  in.x = model_inputs(in.x, m.task);  // (N, ...) f32, scaled by the one input rule (train/task.h)
  if (m.task.kind() == TaskKind::language_model) return write_token_predictions(m, in, output_path, device, precision, logits);
  if (m.task.kind() == TaskKind::regression)
    return write_values(make_inference_runner(m, device, precision)->predict(in.x), in, output_path);
  Tensor probs = make_inference_runner(m, device, precision)->predict(in.x, 1000, logits);  // (N, C) f32
  int64_t n = probs.dim(0), classes = probs.dim(1);
  std::vector<double> p = probs.to_doubles();
  std::vector<double> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (p[i * classes + c] > p[i * classes + best]) best = c;
    labels[i] = static_cast<double>(best);
  }
  if (ext == ".csv") {
    const bool named = !m.class_names.empty(), from_files = !in.files.empty();
    std::string text = from_files ? "file," : "";
    text += named ? "label,class" : "label";
    for (int64_t c = 0; c < classes; ++c) text += fmt::format(fmt::runtime(logits ? ",logit{}" : ",p{}"), c);
    text += '\n';
    for (int64_t i = 0; i < n; ++i) {
      const auto id = static_cast<int64_t>(labels[i]);
      if (from_files) text += csv_field(in.files[static_cast<size_t>(i)]) + ",";
      text += fmt::format("{}", id);
      if (named) {
        text += ',';
        if (id < static_cast<int64_t>(m.class_names.size())) text += csv_field(m.class_names[static_cast<size_t>(id)]);
      }
      for (int64_t c = 0; c < classes; ++c) text += fmt::format(",{:.6g}", p[i * classes + c]);
      text += '\n';
    }
    write_file_atomically(output_path, text);
  } else {
    fs::path labels_path = fs::path(output_path).replace_extension(".labels.npy");
    data::write_npy(labels_path.string(), Tensor::from_values({n}, labels, DType::i64));
    data::write_npy(output_path, probs);
  }
  return {n, std::move(in.notes)};
}

}  // namespace gpuml
