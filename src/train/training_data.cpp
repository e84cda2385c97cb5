#include "train/training_data.h"

#include <cmath>

#include "core/error.h"
#include "data/shard_format.h"
#include "data/text.h"
#include "data/token_shards.h"
#include "core/atomic_file.h"
#include "nn/model.h"
#include "train/dataset_source.h"

namespace gpuml {

namespace {

// The fraction of train held out, the default resolved: 10% of data without a test split, when
// that leaves a row on each side.
double held_out_fraction(double requested, const LoadedData& loaded) {
  if (requested >= 0) return requested;
  const int64_t rows = loaded.train.size(), held = std::llround(kDefaultValSplit * static_cast<double>(rows));
  return loaded.test || held < 1 || held >= rows ? 0 : kDefaultValSplit;
}

// The header's line on which rows evaluate the run (none for a test split).
std::string split_note(double requested, double used, bool has_test, int64_t rows) {
  if (used > 0)
    return fmt::format("validation: {:g}% of train held out ({})", 100 * used,
                       requested >= 0 ? "--val-split" : "--val-split 0 to train on all");
  if (has_test) return "";
  return fmt::format("validation: none ({}): no evaluation, no best checkpoint; model.safetensors is the last epoch's",
                     requested >= 0 ? "--val-split 0" : fmt::format("{} rows are too few to hold out 10%", rows));
}

void check_samples_fit(const nn::Model& model, const Shape& samples, int64_t num_classes, const std::string& where) {
  GPUML_CHECK_SHAPE(model.input_shape() == samples, "the model takes samples of shape {} but {} holds {}{}",
                    shape_str(model.input_shape()), where, shape_str(samples),
                    samples.size() == 1 && model.input_shape().size() > 1
                        ? fmt::format(". Rows of {0} features need a model that takes them: a JSON file such as "
                                      "{{\"input_shape\": [{0}], \"layers\": [{{\"type\": \"Linear\", "
                                      "\"in_features\": {0}, \"out_features\": {1}}}]}} given as --model FILE.json",
                                      samples[0], std::max<int64_t>(num_classes, 2))
                        : std::string());
}

std::string task_note(const TaskChoice& c, const LoadedData& loaded) {
  std::string what = c.task.kind() == TaskKind::classification && loaded.num_classes > 0
                         ? fmt::format(", {} classes in the data", loaded.num_classes)
                         : "";
  return fmt::format("task: {} ({}{}), metric {}", c.task.name(), c.reason, what, c.task.metric_name());
}

// The task resolved against the model (train/task.h), and the labels made its targets.
void apply_task(const TrainConfig& cfg, LoadedData& loaded, const nn::Model& model, const std::string& where,
                TrainingData& d) {
  check_samples_fit(model, loaded.sample_shape, loaded.num_classes, where);
  TaskChoice choice = resolve_task(cfg.task, cfg.ignore_index, loaded.train, model);
  loaded.train = choice.task.prepare(loaded.train, model, where);
  if (loaded.test) loaded.test = choice.task.prepare(*loaded.test, model, where + " (test)");
  d.task_note = task_note(choice, loaded);
  d.task = choice.task;
}

// In-memory data (IDX, CSV, NPZ, or arrays) batched by data::DataLoader, with the optional
// --val-split.
TrainingData in_memory_data(const TrainConfig& cfg, LoadedData loaded, const nn::Model& model,
                            const std::string& where, std::shared_ptr<data::BatchMemory> memory, BatchPart part) {
  TrainingData d;
  apply_task(cfg, loaded, model, where, d);
  d.sample_shape = loaded.sample_shape;
  d.num_classes = loaded.num_classes;
  d.description = loaded.description;
  d.class_names = loaded.class_names;
  data::InMemoryDataset fit = loaded.train;
  d.eval = loaded.test;
  d.val_split = held_out_fraction(cfg.val_split, loaded);
  if (d.val_split > 0) {
    data::TrainValSplit split = data::split_train_val(loaded.train, d.val_split, cfg.seed);
    fit = split.train;
    d.eval = split.val;
    d.eval_name = "val";
  } else if (!d.eval) {
    d.eval_name.clear();
  }
  d.split_note = split_note(cfg.val_split, d.val_split, loaded.test.has_value(), loaded.train.size());
  data::DataLoaderOptions lo;
  // Every rank shuffles the same global batches (same seed) and takes its own rows of each.
  lo.batch_size = cfg.batch_size * part.parts;
  lo.part = part.part;
  lo.parts = part.parts;
  lo.seed = cfg.seed;
  lo.normalization = d.task.input_normalization(fit.features().dtype());  // the one rule (task.h)
  lo.memory = std::move(memory);
  d.train = std::make_unique<data::DataLoader>(fit, lo);
  return d;
}

// A sharded dataset streamed by data::ShardLoader; its test split (if packed) is the eval set.
// Shards hold class ids: classification only.
TrainingData open_shard_data(const TrainConfig& cfg, const nn::Model& model, std::shared_ptr<data::BatchMemory> memory,
                             BatchPart part) {
  GPUML_CHECK(cfg.val_split <= 0, "--val-split is not supported for the sharded dataset {}: pack a test split instead",
              cfg.data);
  check_task_name(cfg.task);
  GPUML_CHECK(cfg.task == "auto" || cfg.task == "classification",
              "--task {}: a sharded dataset holds class ids, so it trains classification only; train from an .npz or "
              ".csv file for {}", cfg.task, cfg.task);
  TrainingData d = open_shard_training_data(
      {cfg.data, cfg.batch_size, part, cfg.seed, cfg.data_memory_limit, cfg.shuffle_buffer,
       std::move(memory)});
  check_samples_fit(model, d.sample_shape, d.num_classes, cfg.data);
  GPUML_CHECK(model.num_classes() >= d.num_classes, "the model predicts {} classes but {} has labels up to {}",
              model.num_classes(), cfg.data, d.num_classes - 1);
  d.task = Task(TaskKind::classification, cfg.ignore_index);
  d.task_note = fmt::format("task: classification ({}: a sharded dataset of class ids), metric accuracy",
                            cfg.task == "auto" ? "auto" : "--task");
  if (d.eval) *d.eval = d.task.prepare(*d.eval, model, cfg.data + " (test)");
  if (!d.eval) {
    d.eval_name.clear();
    d.split_note = "validation: none (a sharded dataset without a test split): no evaluation, no best checkpoint";
  }
  return d;
}

// A text file for a character-level language model (data/text.h): random windows of the first
// 90% train, consecutive windows of the last 10% evaluate; the characters are the class names.
TrainingData open_text_data(const TrainConfig& cfg, const nn::Model& model, std::shared_ptr<data::BatchMemory> memory,
                            BatchPart part) {
  check_task_name(cfg.task);
  GPUML_CHECK(cfg.task == "auto" || cfg.task == "language-model",
              "--task {}: a text file trains a language model (--task language-model)", cfg.task);
  GPUML_CHECK(cfg.val_split <= 0, "--val-split {}: a text file is split as the PyTorch peer splits it (the last 10% "
              "validates); drop --val-split", cfg.val_split);
  const Shape& in = model.input_shape();
  GPUML_CHECK_SHAPE(in.size() == 1, "--data {}: a language model on text takes windows of token ids, input_shape [T]; "
                    "the model takes {}", cfg.data, shape_str(in));
  data::TextCorpus text = read_token_data(cfg.data, in[0], cfg.seed);
  const Shape& out = model.output_shape();
  const int64_t vocab = text.vocab;
  const bool random = data::is_random_tokens(cfg.data);
  GPUML_CHECK_SHAPE(out.size() == 2 && out[1] >= vocab,
                    "--data {}: the {} {} distinct {}, so the model must output (T, >= {}) logits; it outputs {}",
                    cfg.data, random ? "tokens have" : "text has", vocab, random ? "ids" : "characters", vocab,
                    shape_str(out));
  TrainingData d;
  d.task = Task(TaskKind::language_model, cfg.ignore_index);
  d.task_note = fmt::format("task: language-model ({}: {}), metric perplexity", cfg.task == "auto" ? "auto" : "--task",
                            random ? "tokens" : "text");
  d.sample_shape = in;
  d.num_classes = vocab;
  d.class_names = text.vocabulary;
  d.eval = d.task.prepare(data::text_windows(text.validation, in[0]), model, cfg.data + " (validation)");
  d.eval_name = "val";
  const char* unit = random ? "tokens" : "characters";
  d.split_note = fmt::format("validation: the last 10% of the {} ({} {}, {} windows of {})", random ? "tokens" : "text",
                             text.validation.size(), unit, d.eval->size(), in[0]);
  d.description = fmt::format("{} {}: {} {}, {} distinct; {} train, random windows of {} + 1, batch {}",
                              random ? "random tokens" : "text", cfg.data, text.characters, unit, vocab,
                              text.train.size(), in[0], cfg.batch_size);
  // Every rank draws the same global batch of windows and takes its rows (data/batch_source.h).
  d.train = std::make_unique<data::TextWindowLoader>(
      std::move(text.train), data::TextWindowOptions{in[0], cfg.batch_size * part.parts, cfg.seed, std::move(memory),
                                                     part});
  return d;
}

// A token dataset (`gpuml data pack CORPUS --tokenizer`): random windows of the train split's
// shards within --data-memory-limit (data/token_shards.h); the validation split's consecutive
// windows evaluate; the dataset's tokenizer goes into the run for `gpuml generate`.
TrainingData open_token_data(const TrainConfig& cfg, const nn::Model& model, std::shared_ptr<data::BatchMemory> memory,
                             BatchPart part) {
  check_task_name(cfg.task);
  GPUML_CHECK(cfg.task == "auto" || cfg.task == "language-model",
              "--task {}: a token dataset trains a language model (--task language-model)", cfg.task);
  GPUML_CHECK(cfg.val_split <= 0, "--val-split {}: a token dataset has its own validation split (packed from the "
              "last 10% of the corpus); drop --val-split", cfg.val_split);
  GPUML_CHECK(cfg.shuffle_buffer <= 0, "--shuffle-buffer: a token dataset is read as random windows, not shuffled "
              "records; drop it");
  const Shape& in = model.input_shape();
  GPUML_CHECK_SHAPE(in.size() == 1, "--data {}: a language model on tokens takes windows of token ids, input_shape "
                    "[T]; the model takes {}", cfg.data, shape_str(in));
  auto loader = std::make_unique<data::TokenShardLoader>(
      cfg.data, data::TokenShardOptions{in[0], cfg.batch_size * part.parts, cfg.seed, cfg.data_memory_limit, "train",
                                        std::move(memory), part});
  const data::ShardManifest& m = data::read_shard_manifest(cfg.data);
  const int64_t vocab = m.vocab_size;
  const Shape& out = model.output_shape();
  GPUML_CHECK_SHAPE(out.size() == 2 && out[1] >= vocab,
                    "--data {}: the tokenizer has {} tokens, so the model must output (T, >= {}) logits; it outputs {}",
                    cfg.data, vocab, vocab, shape_str(out));
  TrainingData d;
  d.task = Task(TaskKind::language_model, cfg.ignore_index);
  d.task_note = fmt::format("task: language-model ({}: token dataset), metric perplexity",
                            cfg.task == "auto" ? "auto" : "--task");
  d.sample_shape = in;
  d.num_classes = vocab;
  if (!m.tokenizer.empty()) d.tokenizer_json = read_file_bytes(std::filesystem::path(cfg.data) / m.tokenizer);
  if (m.has_split("validation")) {
    d.eval = d.task.prepare(data::text_windows(data::read_token_split(cfg.data, "validation"), in[0]), model,
                            cfg.data + " (validation)");
    d.eval_name = "val";
    d.split_note = fmt::format("validation: the dataset's validation split ({} tokens, {} windows of {})",
                               m.split("validation").records, d.eval->size(), in[0]);
  } else {
    d.eval_name.clear();
    d.split_note = "validation: none (the token dataset has no validation split)";
  }
  const data::TokenShardPlan& p = loader->plan();
  d.description = fmt::format(
      "tokens {}: {} train of a {}-token vocabulary, random windows of {} + 1, batch {}; memory {}: {}", cfg.data,
      loader->tokens(), vocab, in[0], cfg.batch_size, data::format_bytes(p.limit),
      p.whole_split ? fmt::format("the whole split ({} shards) in memory", m.split("train").shards.size())
                    : fmt::format("below the split, windows read from its {} shards (the same batches as in memory)",
                                  m.split("train").shards.size()));
  d.train = std::move(loader);
  return d;
}

}  // namespace

TrainingData load_run_data(const TrainConfig& cfg, const nn::Model& model, std::optional<data::InMemoryDataset> train,
                           std::optional<data::InMemoryDataset> eval, std::shared_ptr<data::BatchMemory> memory,
                           BatchPart part) {
  if (train) {
    GPUML_CHECK(!eval || cfg.val_split <= 0, "a Trainer given an evaluation set takes no --val-split");
    LoadedData loaded{*train, std::move(eval), {}, 0, "", {}};
    loaded = checked_training_data(std::move(loaded), "the training arrays");
    loaded.description = fmt::format("arrays in memory: {} train{}", loaded.train.size(),
                                     loaded.test ? fmt::format(", {} test", loaded.test->size()) : "");
    return in_memory_data(cfg, std::move(loaded), model, "the training arrays", std::move(memory), part);
  }
  if (data::is_token_dataset(cfg.data)) return open_token_data(cfg, model, std::move(memory), part);
  if (data::is_shard_dataset(cfg.data)) return open_shard_data(cfg, model, std::move(memory), part);
  if (is_token_data(cfg.data)) return open_text_data(cfg, model, std::move(memory), part);
  return in_memory_data(cfg, load_training_data({cfg.data, cfg.csv_label, cfg.csv_fill, true, cfg.task}), model,
                        cfg.data, std::move(memory), part);
}

std::pair<Tensor, Tensor> normalised(const data::InMemoryDataset& d, const Task& task) {
  data::DataLoaderOptions o;
  o.batch_size = d.size();
  o.shuffle = false;
  o.prefetch_depth = 0;
  // Keyed on these features' dtype, not on the training set's: see Task::input_normalization.
  o.normalization = task.input_normalization(d.features().dtype());
  data::DataLoader loader(d, o);
  loader.start_epoch(0);
  std::optional<data::Batch> b = loader.next();
  return {b->x, b->y};
}

Tensor model_inputs(const Tensor& features, const Task& task) {
  GPUML_CHECK_SHAPE(features.ndim() >= 1, "model inputs need a leading row axis, got shape {}",
                    shape_str(features.shape()));
  Tensor no_labels =
      Tensor::from_values({features.dim(0)}, std::vector<double>(static_cast<size_t>(features.dim(0)), 0.0), DType::i64);
  return normalised(data::InMemoryDataset(features, no_labels), task).first;
}

}  // namespace gpuml
