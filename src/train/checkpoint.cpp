#include "train/checkpoint.h"

#include <charconv>

#include "core/error.h"
#include "core/json_read.h"

namespace gpuml {

namespace {

// Counters and positions are never negative; a checkpoint that says so was not written by gpuml.
int64_t parse_int(const SafetensorsMetadata& m, const std::string& key, const std::filesystem::path& path) {
  auto it = m.find(key);
  GPUML_CHECK(it != m.end(), "{}: checkpoint metadata lacks '{}' (not a gpuml checkpoint?)", path.string(), key);
  const std::string& text = it->second;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  GPUML_CHECK(ec == std::errc() && end == text.data() + text.size() && v >= 0,
              "{}: checkpoint metadata '{}' = '{}' is not a non-negative integer", path.string(), key,
              text_excerpt(text));
  return v;
}

// Seeds span all of uint64 (std::to_string wrote them so).
uint64_t parse_seed(const SafetensorsMetadata& m, const std::filesystem::path& path) {
  auto it = m.find("gpuml.seed");
  GPUML_CHECK(it != m.end(), "{}: checkpoint metadata lacks 'gpuml.seed' (not a gpuml checkpoint?)", path.string());
  const std::string& text = it->second;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  GPUML_CHECK(ec == std::errc() && end == text.data() + text.size(),
              "{}: checkpoint metadata 'gpuml.seed' = '{}' is not an unsigned integer", path.string(),
              text_excerpt(text));
  return v;
}

double parse_double_or(const SafetensorsMetadata& m, const std::string& key, double fallback) {
  auto it = m.find(key);
  return it == m.end() ? fallback : std::strtod(it->second.c_str(), nullptr);
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& c) {
  NamedTensors all = c.model;
  all.insert(all.end(), c.optimizer.begin(), c.optimizer.end());
  const TrainingProgress& p = c.progress;
  SafetensorsMetadata meta{
      {"format", "pt"},  // what safetensors.torch writes: PyTorch tools expect it
      {"gpuml.epoch", std::to_string(p.epoch)},
      {"gpuml.step", std::to_string(p.step)},
      {"gpuml.loader_epoch", std::to_string(p.loader_epoch)},
      {"gpuml.loader_batch", std::to_string(p.loader_batch)},
      {"gpuml.seed", std::to_string(p.seed)},
      {"gpuml.best_metric", fmt::format("{:.17g}", p.best_metric)},
      {"gpuml.best_epoch", std::to_string(p.best_epoch)},
      {"gpuml.epochs_without_improvement", std::to_string(p.epochs_without_improvement)},
      {"gpuml.epoch_loss_sum", fmt::format("{:.17g}", p.epoch_loss_sum)},
      {"gpuml.epoch_weight", fmt::format("{:.17g}", p.epoch_weight)},
      {"gpuml.epoch_score", fmt::format("{:.17g}", p.epoch_score)},
      {"gpuml.epoch_seen", std::to_string(p.epoch_seen)},
      {"gpuml.epoch_seconds", fmt::format("{:.17g}", p.epoch_seconds)},
      {"gpuml.epoch_step_seconds", fmt::format("{:.17g}", p.epoch_step_seconds)},
      {"gpuml.world_size", std::to_string(p.world_size)},
      {"gpuml.model", c.model_json},
      {"gpuml.config", c.config_json},
  };
  save_safetensors(path, all, meta);
}

Checkpoint load_checkpoint(const std::filesystem::path& path) {
  SafetensorsFile file = load_safetensors(path);
  Checkpoint c;
  for (auto& [name, t] : file.tensors) {
    if (name.rfind(kOptimizerPrefix, 0) == 0) c.optimizer.emplace_back(name, t);
    else c.model.emplace_back(name, t);
  }
  const SafetensorsMetadata& m = file.metadata;
  TrainingProgress& p = c.progress;
  p.epoch = parse_int(m, "gpuml.epoch", path);
  p.step = parse_int(m, "gpuml.step", path);
  p.loader_epoch = parse_int(m, "gpuml.loader_epoch", path);
  p.loader_batch = parse_int(m, "gpuml.loader_batch", path);
  p.seed = parse_seed(m, path);
  p.best_epoch = parse_int(m, "gpuml.best_epoch", path);
  p.epochs_without_improvement = parse_int(m, "gpuml.epochs_without_improvement", path);
  auto best = m.find("gpuml.best_metric");
  GPUML_CHECK(best != m.end(), "{}: checkpoint metadata lacks 'gpuml.best_metric'", path.string());
  p.best_metric = std::strtod(best->second.c_str(), nullptr);
  // Partial-epoch sums are absent from checkpoints written at epoch ends by older versions.
  if (m.count("gpuml.epoch_seen")) {
    p.epoch_seen = parse_int(m, "gpuml.epoch_seen", path);
    // Before tasks (classification only): the correct count, and rows as the weight.
    p.epoch_score = m.count("gpuml.epoch_score") ? parse_double_or(m, "gpuml.epoch_score", 0.0)
                                                 : static_cast<double>(parse_int(m, "gpuml.epoch_correct", path));
    p.epoch_weight = parse_double_or(m, "gpuml.epoch_weight", static_cast<double>(p.epoch_seen));
  }
  p.epoch_loss_sum = parse_double_or(m, "gpuml.epoch_loss_sum", 0.0);
  p.epoch_seconds = parse_double_or(m, "gpuml.epoch_seconds", 0.0);
  p.epoch_step_seconds = parse_double_or(m, "gpuml.epoch_step_seconds", 0.0);
  p.world_size = m.count("gpuml.world_size") ? parse_int(m, "gpuml.world_size", path) : 1;
  GPUML_CHECK(p.world_size >= 1, "{}: checkpoint metadata 'gpuml.world_size' = 0 is not a number of processes",
              path.string());
  auto model = m.find("gpuml.model");
  GPUML_CHECK(model != m.end() && !model->second.empty(), "{}: checkpoint has no model description",
              path.string());
  c.model_json = model->second;
  auto config = m.find("gpuml.config");
  if (config != m.end()) c.config_json = config->second;
  return c;
}

}  // namespace gpuml
