// What a model is trained to do: the targets' shape and dtype, the loss, and the metric reported
// beside it. The Trainer, ModelRunner, `gpuml eval` and the logs take all of these from a Task.
//
//   task             targets per sample           model output per sample   loss                  metric
//   classification   () class id, i64             (C) logits                cross-entropy         accuracy
//   regression       (K...) f32, or () for K = 1  (K...) values             mean squared error    RMSE
//   language-model   (T) token ids, i64           (T, V) logits             cross-entropy per     perplexity
//                    (ignore_index skipped)                                 counted token
//
// `--task auto` (the default) decides from the labels and the model (resolve_task):
//   1. labels with one value per row (N,):
//      - a model with one output per sample: regression;
//      - integer labels, or floating labels that are all whole numbers >= 0: classification
//        (a float label column of whole numbers is still classification);
//      - otherwise (fractional or negative numbers): regression;
//   2. integer labels of shape (N, T) and a model whose output is (T, V): language-model;
//   3. anything else: regression, targets shaped as the model's output.
//
//   TaskChoice c = resolve_task("auto", -100, loaded.train, model);  // c.task, c.reason for the header
//   Task::Terms t = c.task.emit(output, targets);                     // in the training graph
//   double acc = c.task.metric(sums);                                 // after an epoch
//   data::Normalization n = c.task.input_normalization(x.dtype());    // how to scale x for the model
//
// Input scaling, the one rule (input_normalization): uint8 features are images and are scaled by
// 1/255 to [0, 1]; features of every other dtype (float32, float64, int32, int64) are used as they
// are; a language model's features are token ids and are never scaled. The rule is keyed on the
// dtype of the features at hand: each split, each array given to fit, evaluate or predict, each
// file given to `gpuml eval|predict`, so the same values reach the model whichever way they come
// (a float validation set beside uint8 training images is used as given; uint8 images given to a
// model trained on floats in [0, 1] are scaled). Every place that feeds a model takes its scaling
// from here: the data loaders of a run (in memory and shards), the run's evaluation, `gpuml eval`
// and `gpuml predict`, and the C++ and Python APIs (train/training_data.h: normalised, model_inputs).
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/normalize.h"
#include "ops/build.h"

namespace gpuml {

namespace nn {
class Model;
}

enum class TaskKind { classification, regression, language_model };

// The largest class id: ids index the model's outputs, and a file's label of 2^63 - 1 made
// `max + 1` overflow (dataset_source.cpp refuses larger integer labels when it reads them).
inline constexpr int64_t kMaxClassId = INT32_MAX - 1;

// Sums over batches (an epoch, an evaluation): loss_sum is each batch's mean loss times its
// weight; weight counts what the loss averages over (rows, or counted tokens); score is the
// classification's correct predictions (0 for the other tasks).
struct TaskSums {
  double loss_sum = 0, weight = 0, score = 0;
  int64_t rows = 0;
  void add(double loss, double batch_weight, double batch_score, int64_t batch_rows) {
    loss_sum += loss * batch_weight;
    weight += batch_weight;
    score += batch_score;
    rows += batch_rows;
  }
};

class Task {
 public:
  explicit Task(TaskKind kind = TaskKind::classification, int64_t ignore_index = -100);

  TaskKind kind() const { return kind_; }
  // Rows per evaluation batch: 1000, or for a language model the training batch (each row holds
  // T tokens with (T, V) logits and attention over T: 1000 rows of a GPT can need gigabytes).
  int64_t eval_batch_rows(int64_t train_batch) const {
    return kind_ == TaskKind::language_model && train_batch > 0 ? train_batch : 1000;
  }
  int64_t ignore_index() const { return ignore_index_; }
  const char* name() const;         // "classification", "regression", "language-model"
  const char* metric_name() const;  // "accuracy", "rmse", "perplexity" (metrics.csv columns)
  const char* metric_short() const; // "acc", "rmse", "ppl" (the progress line)
  // How features of this dtype are scaled before the model sees them: the one input-scaling rule
  // (above). {scale 1/255} for uint8 (not for a language model), else the identity.
  data::Normalization input_normalization(DType features) const;
  // Whether a larger metric is better (accuracy), or a smaller one (RMSE, perplexity).
  bool higher_is_better() const { return kind_ == TaskKind::classification; }
  bool better(double metric, double best) const { return higher_is_better() ? metric > best : metric < best; }
  DType target_dtype() const { return kind_ == TaskKind::regression ? DType::f32 : DType::i64; }
  // A batch's targets for a model with this output per sample: (B), (B, T), or (B, output...).
  Shape target_shape(int64_t batch, const Shape& output) const;

  // The graph's part: the loss to minimise (a mean over `weight`), the batch's weight (absent:
  // its rows) and score (absent: 0).
  struct Terms {
    Sym loss;
    std::optional<Sym> weight, score;
  };
  Terms emit(Sym output, Sym targets) const;
  // What prediction returns: probabilities over the last axis, or the regression's values.
  Sym predict(Sym output) const;

  double mean_loss(const TaskSums& s) const { return s.weight > 0 ? s.loss_sum / s.weight : NAN; }
  double metric(const TaskSums& s) const;

  // Checks the labels against the model (class ids in range, tokens in the vocabulary or
  // ignore_index, regression targets the size of the output) and converts them to
  // target_dtype() and target_shape(); errors name `what` and the first bad row.
  data::InMemoryDataset prepare(const data::InMemoryDataset& d, const nn::Model& model, const std::string& what) const;

 private:
  TaskKind kind_;
  int64_t ignore_index_;
};

// Class ids (i64, any shape) in 0..classes-1; the error names the first row outside.
void check_class_ids(const Tensor& ids, int64_t classes, const std::string& what);

// "auto" or a task's name; anything else is refused with the list (and a did-you-mean).
void check_task_name(const std::string& name);

struct TaskChoice {
  Task task;
  std::string reason;  // why (auto), or "--task": for the run's header
};
TaskChoice resolve_task(const std::string& requested, int64_t ignore_index, const data::InMemoryDataset& train,
                        const nn::Model& model);

}  // namespace gpuml
