#include "train/resume.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_read.h"

namespace gpuml {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Typed reads of the saved configuration: a field of the wrong type or range is an Error naming
// it (nlohmann's own conversions would throw its exceptions, or cast 1e300 to an integer).
class SavedFields {
 public:
  SavedFields(const json& object, std::string where) : object_(object), where_(std::move(where)) {
    GPUML_CHECK(object_.is_object(), "{}: expected a JSON object, got {}", where_, json_excerpt(object_));
  }
  bool has(const char* key) const { return object_.contains(key); }
  const json& at(const char* key) const {
    GPUML_CHECK(object_.contains(key), "{}: missing field '{}'", where_, key);
    return object_.at(key);
  }
  std::string string(const char* key) const {
    const json& v = at(key);
    GPUML_CHECK(v.is_string(), "{}: field '{}' must be a string, got {}", where_, key, json_excerpt(v));
    return v.get<std::string>();
  }
  int64_t integer(const char* key) const {
    const json& v = at(key);
    GPUML_CHECK(v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= INT64_MAX),
                "{}: field '{}' must be an integer, got {}", where_, key, json_excerpt(v));
    return v.get<int64_t>();
  }
  uint64_t unsigned_integer(const char* key) const {
    const json& v = at(key);
    GPUML_CHECK(v.is_number_unsigned(), "{}: field '{}' must be a non-negative integer, got {}", where_, key,
                json_excerpt(v));
    return v.get<uint64_t>();
  }
  double number(const char* key) const {
    const json& v = at(key);
    GPUML_CHECK(v.is_number(), "{}: field '{}' must be a number, got {}", where_, key, json_excerpt(v));
    return v.get<double>();
  }
  bool boolean(const char* key) const {
    const json& v = at(key);
    GPUML_CHECK(v.is_boolean(), "{}: field '{}' must be true or false, got {}", where_, key, json_excerpt(v));
    return v.get<bool>();
  }
  const std::string& where() const { return where_; }

 private:
  const json& object_;
  std::string where_;
};

}  // namespace

json config_to_json(const TrainConfig& c) {
  const optim::OptimizerConfig& o = c.optimizer;
  return {{"data", c.data},
          {"model", c.model},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"optimizer",
           {{"kind", o.kind}, {"lr", o.lr}, {"momentum", o.momentum}, {"nesterov", o.nesterov},
            {"weight_decay", optim::weight_decay_of(o)}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
            {"clip_grad_norm", o.clip_grad_norm}, {"weight_decay_params", o.weight_decay_params}}},
          {"schedule",
           {{"kind", c.schedule.kind}, {"step_size", c.schedule.step_size}, {"gamma", c.schedule.gamma},
            {"warmup_steps", c.schedule.warmup_steps}, {"min_lr", c.schedule.min_lr}}},
          {"seed", c.seed},
          {"init_from", c.init_from},
          {"device", c.device},
          {"val_split", c.val_split},
          {"patience", c.patience},
          {"csv_label", c.csv_label},
          {"csv_fill", c.csv_fill},
          {"task", c.task},
          {"ignore_index", c.ignore_index},
          {"data_memory_limit", c.data_memory_limit},
          {"shuffle_buffer", c.shuffle_buffer},
          {"checkpoint_every", c.checkpoint_every},
          {"eval_every", c.eval_every},
          {"eval_iters", c.eval_iters},
          {"steps", c.steps},
          {"precision", precision_name(c.precision)},
          {"deterministic", c.deterministic},
          {"bucket_mb", c.bucket_mb},
          {"zero", c.zero},
          {"sync_batchnorm", c.sync_batchnorm}};
}

TrainConfig config_from_json(const json& j, const TrainConfig& now, const std::string& where) {
  SavedFields f(j, where);
  TrainConfig c = now;
  c.data = f.string("data");
  c.model = f.string("model");
  c.batch_size = f.integer("batch_size");
  if (!now.epochs_given) c.epochs = f.integer("epochs");
  SavedFields o(f.at("optimizer"), where + ": optimizer");
  c.optimizer.kind = o.string("kind");
  c.optimizer.lr = o.number("lr");
  c.optimizer.momentum = o.number("momentum");
  c.optimizer.nesterov = o.boolean("nesterov");
  c.optimizer.weight_decay = o.number("weight_decay");
  c.optimizer.beta1 = o.number("beta1");
  c.optimizer.beta2 = o.number("beta2");
  c.optimizer.eps = o.number("eps");
  c.optimizer.clip_grad_norm = o.number("clip_grad_norm");
  // Runs saved before decay could skip parameters decayed every one.
  c.optimizer.weight_decay_params = o.has("weight_decay_params") ? o.string("weight_decay_params") : "all";
  try {
    optim::check_weight_decay_params(c.optimizer.weight_decay_params);
  } catch (const Error& e) {
    GPUML_FAIL(ErrorKind::Invalid, "{}: optimizer: {}", where, e.message());
  }
  SavedFields s(f.at("schedule"), where + ": schedule");
  c.schedule.kind = s.string("kind");
  c.schedule.step_size = s.integer("step_size");
  c.schedule.gamma = s.number("gamma");
  c.schedule.warmup_steps = s.integer("warmup_steps");
  c.schedule.min_lr = s.number("min_lr");
  c.seed = f.unsigned_integer("seed");
  c.device = now.device == "auto" ? f.string("device") : now.device;
  c.val_split = f.number("val_split");
  c.patience = f.integer("patience");
  c.csv_label = f.string("csv_label");
  c.csv_fill = f.string("csv_fill");
  // Fields added after the first checkpoints were written have defaults.
  c.data_memory_limit = f.has("data_memory_limit") ? f.unsigned_integer("data_memory_limit") : 0;
  c.shuffle_buffer = f.has("shuffle_buffer") ? f.integer("shuffle_buffer") : 0;
  if (now.checkpoint_every == 0)
    c.checkpoint_every = f.has("checkpoint_every") ? f.integer("checkpoint_every") : 0;
  if (now.eval_every == 0) c.eval_every = f.has("eval_every") ? f.integer("eval_every") : 0;
  if (now.eval_iters == 0) c.eval_iters = f.has("eval_iters") ? f.integer("eval_iters") : 0;
  c.precision = parse_precision(f.has("precision") ? f.string("precision") : std::string("fp32"));
  c.deterministic = f.has("deterministic") ? f.boolean("deterministic") : false;
  c.sync_batchnorm = f.has("sync_batchnorm") ? f.boolean("sync_batchnorm") : false;
  c.task = f.has("task") ? f.string("task") : std::string("classification");  // runs before tasks classified
  c.ignore_index = f.has("ignore_index") ? f.integer("ignore_index") : -100;
  c.steps = f.has("steps") ? f.integer("steps") : 0;
  return c;
}

ResumePoint read_resume_point(const std::string& resume, const TrainConfig& requested) {
  fs::path p = resume;
  if (fs::is_directory(p)) p /= "last.safetensors";
  GPUML_CHECK_KIND(ErrorKind::Io, fs::exists(p), "--resume {}: no checkpoint at {}", resume, p.string());
  Checkpoint checkpoint = load_checkpoint(p);
  const std::string where = p.string();
  GPUML_CHECK(!checkpoint.config_json.empty(), "{}: the checkpoint holds no training configuration", where);
  const nlohmann::json saved = parse_json(checkpoint.config_json, where + ": training configuration");
  TrainConfig config = config_from_json(saved, requested, where + ": training configuration");
  const int64_t saved_epochs = SavedFields(saved, where + ": training configuration").integer("epochs");
  nn::Model model = [&] {
    json spec = parse_json(checkpoint.model_json, where + ": model description");
    try {
      return nn::Model::from_json(spec);
    } catch (const Error& e) {
      GPUML_FAIL(e.kind(), "{}: model description: {}", where, e.message());
    }
  }();
  return ResumePoint{p.string(), std::move(checkpoint), std::move(config), saved_epochs, std::move(model)};
}

std::string adapt_to_world_size(ResumePoint& resumed, int world_size) {
  TrainingProgress& p = resumed.checkpoint.progress;
  const int64_t saved = p.world_size;
  if (saved == world_size) return "";
  const int64_t batch = resumed.config.batch_size;
  const int64_t saved_batch = p.loader_batch;
  // loader_batch global batches of saved * batch rows were trained; as many whole new ones.
  p.loader_batch = p.loader_batch * saved / world_size;
  p.world_size = world_size;
  return fmt::format(
      "--resume {}: the run was trained by {} process{} and continues in {}: the global batch is now {} rows instead "
      "of {}, so the data order changes and the result will differ from a run that never stopped{}",
      resumed.path, saved, saved == 1 ? "" : "es", world_size, batch * world_size, batch * saved,
      saved_batch > 0 ? fmt::format(" (the epoch continues at batch {} of the new size, after {} rows)", p.loader_batch,
                                    saved_batch * saved * batch)
                      : "");
}

}  // namespace gpuml
