#include "train/task.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/spelling.h"
#include "nn/model.h"

namespace gpuml {

namespace {

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names{"auto", "classification", "regression", "language-model"};
  return names;
}

TaskKind kind_named(const std::string& name) {
  if (name == "regression") return TaskKind::regression;
  if (name == "language-model") return TaskKind::language_model;
  return TaskKind::classification;
}

// The first label (row, value) outside [0, limit) other than `skip`, if any.
std::optional<std::pair<int64_t, int64_t>> first_outside(const Tensor& labels, int64_t limit, std::optional<int64_t> skip) {
  const int64_t* y = labels.data<int64_t>();
  const int64_t per_row = labels.dim(0) > 0 ? labels.numel() / labels.dim(0) : 1;
  for (int64_t i = 0; i < labels.numel(); ++i)
    if ((y[i] < 0 || y[i] >= limit) && (!skip || y[i] != *skip)) return std::make_pair(i / per_row, y[i]);
  return std::nullopt;
}

// Floating labels as class ids when every one is a whole number in range; nullopt otherwise.
std::optional<Tensor> whole_numbers(const Tensor& labels) {
  if (labels.dtype() == DType::i64) return labels;
  const float* y = labels.data<float>();
  Tensor ids = Tensor::empty(labels.shape(), DType::i64);
  for (int64_t i = 0; i < labels.numel(); ++i) {
    if (!(y[i] >= 0 && y[i] <= static_cast<float>(kMaxClassId) && y[i] == std::floor(y[i]))) return std::nullopt;
    ids.data<int64_t>()[i] = static_cast<int64_t>(y[i]);
  }
  return ids;
}

Tensor as_f32(const Tensor& labels) {
  if (labels.dtype() == DType::f32) return labels;
  Tensor out = Tensor::empty(labels.shape(), DType::f32);
  for (int64_t i = 0; i < labels.numel(); ++i) out.data<float>()[i] = static_cast<float>(labels.data<int64_t>()[i]);
  return out;
}

void check_finite_labels(const Tensor& labels, const std::string& what) {
  if (labels.dtype() != DType::f32) return;
  const int64_t per_row = labels.dim(0) > 0 ? labels.numel() / labels.dim(0) : 1;
  for (int64_t i = 0; i < labels.numel(); ++i)
    GPUML_CHECK(std::isfinite(labels.data<float>()[i]), "{}: the label in row {} is {}, not a finite number", what,
                i / per_row, labels.data<float>()[i]);
}

}  // namespace

Task::Task(TaskKind kind, int64_t ignore_index) : kind_(kind), ignore_index_(ignore_index) {}

data::Normalization Task::input_normalization(DType features) const {
  data::Normalization n;
  // uint8 features are images (IDX files, PNG/JPEG, packed image folders, uint8 arrays): [0, 1] as
  // the PyTorch reference scales them. Token ids index an embedding, whatever their dtype.
  if (features == DType::u8 && kind_ != TaskKind::language_model) n.scale = 1.0 / 255.0;
  return n;
}

const char* Task::name() const {
  switch (kind_) {
    case TaskKind::regression: return "regression";
    case TaskKind::language_model: return "language-model";
    default: return "classification";
  }
}

const char* Task::metric_name() const {
  switch (kind_) {
    case TaskKind::regression: return "rmse";
    case TaskKind::language_model: return "perplexity";
    default: return "accuracy";
  }
}

const char* Task::metric_short() const {
  switch (kind_) {
    case TaskKind::regression: return "rmse";
    case TaskKind::language_model: return "ppl";
    default: return "acc";
  }
}

Shape Task::target_shape(int64_t batch, const Shape& output) const {
  Shape shape{batch};
  if (kind_ == TaskKind::language_model) shape.push_back(output.at(0));
  if (kind_ == TaskKind::regression) shape.insert(shape.end(), output.begin(), output.end());
  return shape;
}

Task::Terms Task::emit(Sym output, Sym targets) const {
  switch (kind_) {
    case TaskKind::regression: {  // mean over every target value; RMSE is the root of its mean
      Sym diff = sub(output, targets);
      return {mean(mul(diff, diff)), std::nullopt, std::nullopt};
    }
    case TaskKind::language_model: {  // (B, T, V) logits and (B, T) tokens, as B*T rows
      const int64_t vocab = output.shape().back();
      Sym tokens = reshape(targets, {-1});
      Sym loss = cross_entropy(reshape(output, {-1, vocab}), tokens, ignore_index_);
      Sym counted = sum(cast(ne(tokens, scalar_like(tokens, static_cast<double>(ignore_index_))), DType::f32));
      return {loss, counted, std::nullopt};
    }
    default:
      return {cross_entropy(output, targets), std::nullopt, sum(cast(eq(argmax(output, 1), targets), DType::f32))};
  }
}

Sym Task::predict(Sym output) const { return kind_ == TaskKind::regression ? output : softmax(output, -1); }

double Task::metric(const TaskSums& s) const {
  if (s.weight <= 0) return NAN;
  switch (kind_) {
    case TaskKind::regression: return std::sqrt(s.loss_sum / s.weight);
    case TaskKind::language_model: return std::exp(s.loss_sum / s.weight);
    default: return s.score / s.weight;
  }
}

data::InMemoryDataset Task::prepare(const data::InMemoryDataset& d, const nn::Model& model,
                                    const std::string& what) const {
  const Tensor& labels = d.labels();
  const Shape& out = model.output_shape();
  check_finite_labels(labels, what);
  if (kind_ == TaskKind::regression) {
    GPUML_CHECK_SHAPE(numel(d.label_shape()) == numel(out),
                      "{}: regression targets have {} value(s) per row (shape {}) but the model outputs {} (shape {}); "
                      "is the label in another column (--csv-label), or is this --task classification?",
                      what, numel(d.label_shape()), shape_str(d.label_shape()), numel(out), shape_str(out));
    Shape shape = out;
    shape.insert(shape.begin(), d.size());
    return data::InMemoryDataset(d.features(), as_f32(labels).reshape(shape));
  }
  std::optional<Tensor> ids = whole_numbers(labels);
  GPUML_CHECK(ids.has_value(), "{}: --task {} needs integer labels, and {} holds fractional or negative numbers "
              "(regression targets?): give --task regression, or --task auto", what, name(), what);
  if (kind_ == TaskKind::language_model) {
    GPUML_CHECK_SHAPE(d.label_shape().size() == 1 && out.size() == 2 && out[0] == d.label_shape()[0],
                      "{}: a language model takes targets (N, T) of token ids and outputs (N, T, V) logits, but the "
                      "targets are {} per row and the model outputs {}",
                      what, shape_str(d.label_shape()), shape_str(out));
    if (auto bad = first_outside(*ids, out[1], ignore_index_))
      GPUML_FAIL(ErrorKind::Invalid, "{}: token {} in row {} is outside the vocabulary 0..{} and not the ignore index {}",
                 what, bad->second, bad->first, out[1] - 1, ignore_index_);
    return data::InMemoryDataset(d.features(), *ids);
  }
  GPUML_CHECK_SHAPE(d.label_shape().empty(), "{}: classification takes one class id per row, but the labels are {} per "
                    "row: give --task regression or --task language-model", what, shape_str(d.label_shape()));
  GPUML_CHECK_SHAPE(out.size() == 1 && out[0] >= 2,
                    "{}: classification needs a model with one output per class, but it outputs {} per sample",
                    what, shape_str(out));
  check_class_ids(*ids, out[0], what);
  return data::InMemoryDataset(d.features(), *ids);
}

void check_class_ids(const Tensor& ids, int64_t classes, const std::string& what) {
  if (auto bad = first_outside(ids, classes, std::nullopt)) {
    const int64_t* y = ids.data<int64_t>();
    GPUML_CHECK(bad->second >= 0, "{}: label {} in row {} is outside 0..{}", what, bad->second, bad->first, classes - 1);
    GPUML_FAIL(ErrorKind::Invalid, "the model predicts {} classes but {} has labels up to {} (label {} in row {})",
               classes, what, *std::max_element(y, y + ids.numel()), bad->second, bad->first);
  }
}

void check_task_name(const std::string& name) {
  for (const std::string& n : task_names())
    if (n == name) return;
  GPUML_FAIL(ErrorKind::Invalid, "--task {}: expected one of {}{}", name, fmt::join(task_names(), ", "),
             did_you_mean(name, task_names()));
}

TaskChoice resolve_task(const std::string& requested, int64_t ignore_index, const data::InMemoryDataset& train,
                        const nn::Model& model) {
  check_task_name(requested);
  if (requested != "auto") return {Task(kind_named(requested), ignore_index), "--task"};
  const Shape& out = model.output_shape();
  const Shape labels = train.label_shape();
  if (labels.empty()) {
    if (numel(out) == 1) return {Task(TaskKind::regression, ignore_index), "auto: the model has one output"};
    if (train.labels().dtype() == DType::i64)
      return {Task(TaskKind::classification, ignore_index), "auto: integer labels"};
    if (whole_numbers(train.labels()))
      return {Task(TaskKind::classification, ignore_index), "auto: labels are whole numbers"};
    return {Task(TaskKind::regression, ignore_index), "auto: labels are fractional or negative numbers"};
  }
  if (labels.size() == 1 && train.labels().dtype() == DType::i64 && out.size() == 2 && out[0] == labels[0])
    return {Task(TaskKind::language_model, ignore_index),
            fmt::format("auto: token targets ({}) and a model with {} logits per position", labels[0], out[1])};
  return {Task(TaskKind::regression, ignore_index), fmt::format("auto: targets of shape {} per row", shape_str(labels))};
}

}  // namespace gpuml
