#include "train/trainer.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/spelling.h"
#include "interop/onnx_import.h"
#include "data/text.h"
#include "data/token_shards.h"
#include "interop/weights_file.h"
#include "nn/transformer.h"
#include "train/data_parallel.h"
#include "train/dataset_source.h"
#include "train/device_choice.h"
#include "train/resume.h"
#include "train/training_data.h"

namespace gpuml {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double TrainState::epoch_seconds() const {
  return earlier_seconds + std::chrono::duration<double>(Clock::now() - epoch_start).count();
}

TrainingProgress TrainState::mid_epoch_progress() const {
  TrainingProgress p = progress;
  p.loader_epoch = epoch;
  p.loader_batch = batch_index + 1;
  p.epoch_loss_sum = sums.loss_sum;
  p.epoch_weight = sums.weight;
  p.epoch_score = sums.score;
  p.epoch_seen = sums.rows;
  p.epoch_seconds = epoch_seconds();
  p.epoch_step_seconds = step_seconds;
  return p;
}

std::string TrainState::config_json(int indent) const {
  nlohmann::json j = config_to_json(*config);
  if (!class_names.empty()) j["class_names"] = class_names;
  // The tokenizer travels with the run (config.json and every checkpoint), so `generate` needs
  // nothing but the checkpoint.
  if (!tokenizer_json.empty()) j["tokenizer"] = nlohmann::json::parse(tokenizer_json);
  return j.dump(indent);
}

Checkpoint TrainState::checkpoint(const TrainingProgress& p) const {
  return Checkpoint{runner->model_tensors(), runner->optimizer_tensors(), p, model->to_json().dump(), config_json()};
}

namespace {

// OpenMP's thread count is per calling thread: set for the Trainer's work, restored after it, so
// another trainer on another thread (or the caller's own code) keeps its own.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : previous_(omp_get_max_threads()), set_(threads > 0) {
    if (set_) omp_set_num_threads(threads);
  }
  ~ThreadScope() {
    if (set_) omp_set_num_threads(previous_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int previous_;
  bool set_;
};

// A GPT preset takes its vocabulary from the data: a text file's distinct characters, a token
// dataset's tokenizer.
nn::Model load_model(const std::string& spec, const std::string& data) {
  if (spec == "mlp" || spec == "cnn") return nn::Model::preset(spec);
  if (nn::is_gpt_preset(spec)) {
    int64_t vocab = 0;
    if (data::is_random_tokens(data))
      vocab = data::random_token_corpus(data, nn::gpt_preset(spec, 1).block, 0).vocab;
    else if (!data.empty() && is_text_file(data))
      vocab = data::read_text_corpus(data, nn::gpt_preset(spec, 1).block).vocab;
    else if (!data.empty() && data::is_token_dataset(data))
      vocab = data::read_shard_manifest(data).vocab_size;
    return nn::Model::from_json(nn::gpt_model_json(nn::gpt_preset(spec, vocab)));
  }
  std::vector<std::string> presets = nn::Model::preset_names();
  for (const std::string& name : nn::gpt_preset_names()) presets.push_back(name);
  GPUML_CHECK(fs::exists(spec), "--model {}: not a preset ({}){} and no such JSON or ONNX file", spec,
              fmt::join(presets, ", "), did_you_mean(spec, presets));
  return nn::Model::from_json_file(spec);
}

void validate(const TrainConfig& cfg) {
  GPUML_CHECK(cfg.epochs >= 1, "--epochs must be >= 1, got {}", cfg.epochs);
  GPUML_CHECK(cfg.batch_size >= 1, "--batch-size must be >= 1, got {}", cfg.batch_size);
  GPUML_CHECK(cfg.checkpoint_every >= 0, "--checkpoint-every must be >= 0, got {}", cfg.checkpoint_every);
  GPUML_CHECK(cfg.max_steps >= 0, "--max-steps must be >= 0, got {}", cfg.max_steps);
  GPUML_CHECK(cfg.steps >= 0, "--steps must be >= 0, got {}", cfg.steps);
  GPUML_CHECK(cfg.eval_every >= 0 && cfg.eval_iters >= 0, "--eval-every {} and --eval-iters {} must be >= 0",
              cfg.eval_every, cfg.eval_iters);
  // Negative: the default (train_config.h), resolved when the data is read.
  GPUML_CHECK(cfg.val_split < 1, "--val-split must be in [0, 1), got {}", cfg.val_split);
  GPUML_CHECK(std::isfinite(cfg.bucket_mb) && cfg.bucket_mb > 0 && cfg.bucket_mb <= 1 << 20,
              "--bucket-mb must be a positive number of MiB (at most 1048576), got {}", cfg.bucket_mb);
  optim::validate(cfg.optimizer);
  optim::validate(cfg.schedule);
}

}  // namespace

struct Trainer::Impl {
  TrainConfig cfg;
  std::optional<ResumePoint> resumed;
  PlanOptions plan;
  std::shared_ptr<data::BatchMemory> memory;
  TrainingData data;
  std::optional<nn::Model> model;
  std::optional<NamedTensors> initial_weights;  // an ONNX model's, or --init-from's
  std::string weights_from;                     // which of them (TrainState::weights_from)
  std::unique_ptr<ModelRunner> runner;
  fs::path run_dir;
  Tensor eval_x, eval_y;
  std::vector<std::shared_ptr<Callback>> callbacks;
  bool primary = true;
  std::atomic<bool> stop_asked{false};
  std::shared_ptr<Communicator> comm;  // nullptr: one process
  std::shared_ptr<Communicator> gradient_comm;  // NCCL on the GPU; nullptr: comm carries the gradients
  std::string gradients_note;  // which engine carries the gradients, for the header ("" when one process)
  std::chrono::milliseconds comm_timeout{std::chrono::minutes(5)};
  int rank = 0, world_size = 1;
  std::optional<TrainingProgress> fitted;  // the progress where the last fit() ended
  std::string resume_warning;  // resumed by another number of processes (adapt_to_world_size)

  void read_config(const TrainConfig& requested);
  void open_gradient_communicator(const DataParallel& parallel);
  void build_model(TrainerInputs& inputs);
  void read_initial_weights();
  TrainState initial_state();
  template <typename Hook>
  void call(Hook hook, TrainState& st) {
    for (const auto& cb : callbacks) ((*cb).*hook)(st);
  }
  bool run_epoch(TrainState& st, TrainResult& result);
  void evaluate_at_step(TrainState& st);
  TaskSums evaluate_over_ranks(const Tensor& x, const Tensor& y, int64_t batch_rows);
  TaskSums evaluate_held_out(int64_t rows, int64_t batch_rows);
  void end_epoch(TrainState& st, TrainResult& result);
  void finish(TrainState& st, TrainResult& result);
};

// --resume replaces the configuration with the saved run's (train/resume.h says which fields the
// new command keeps).
// NCCL for the gradients when choose_gradient_engine() says so. Opened after the ranks agreed on
// the configuration (its unique id travels over `comm`), on every rank alike (the same request,
// device kind and world size). No fallback to host memory when NCCL fails: a rank that fell back
// alone would meet the others in another collective; it throws, and its failure ends the job.
void Trainer::Impl::open_gradient_communicator(const DataParallel& parallel) {
  Backend& home = *plan.backends.front();
  const GradientEngineChoice choice =
      choose_gradient_engine(parallel.gradient_engine, !home.device().is_host(), world_size);
  if (choice.engine != "nccl") {
    if (comm) gradients_note = fmt::format("{} (host memory)", comm->name());
    return;
  }
  try {
    gradient_comm = open_device_communicator(home, comm, parallel.collective_timeout);
  } catch (const Error& e) {
    GPUML_FAIL(e.kind(), "{} (GPUML_COMM=host sends the gradients through host memory over {} instead)",
               e.message(), comm ? comm->name() : "nothing: one process needs no collective");
  }
  gradients_note = gradient_comm->description();
}

void Trainer::Impl::read_config(const TrainConfig& requested) {
  cfg = requested;
  if (!cfg.resume.empty()) {
    resumed.emplace(read_resume_point(cfg.resume, requested));
    cfg = resumed->config;
    if (cfg.out.empty()) cfg.out = fs::path(resumed->path).parent_path().string();
  }
  validate(cfg);
}

// The resumed run's model, the one given, an ONNX file's (with its weights: training fine-tunes
// them unless --init-from replaces them), or a preset or JSON file.
void Trainer::Impl::build_model(TrainerInputs& inputs) {
  if (resumed) {
    model = std::move(resumed->model);
  } else if (inputs.model) {
    model = std::move(*inputs.model);
  } else if (fs::path(cfg.model).extension() == ".onnx") {
    interop::ImportedModel imported = interop::import_onnx_file(cfg.model);
    model = nn::Model::from_json(imported.model.to_json());
    initial_weights = std::move(imported.weights);
    weights_from = fmt::format("the ONNX model {}", cfg.model);
  } else {
    model = load_model(cfg.model, cfg.data);
  }
}

// --init-from: weights by name, checked against the model before anything is written.
void Trainer::Impl::read_initial_weights() {
  if (cfg.init_from.empty()) return;
  GPUML_CHECK(!resumed, "--init-from and --resume exclude each other: a resumed run continues from its checkpoint");
  try {
    initial_weights = model->untie(interop::load_weights_file(cfg.init_from));
    interop::check_weights_fit(model->param_infos(), *initial_weights);
    weights_from = fmt::format("--init-from {}", cfg.init_from);
  } catch (const Error& e) {
    GPUML_FAIL(e.kind(), "--init-from {}: {}", cfg.init_from, e.message());
  }
}

Trainer::Trainer(TrainConfig config, TrainerInputs inputs, DataParallel parallel) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.read_config(config);
  ThreadScope threads(m.cfg.threads);
  m.plan = plan_options_for_device(m.cfg.device, parallel.local_rank);
  m.plan.deterministic = m.cfg.deterministic;
  m.build_model(inputs);
  if (parallel.communicator && parallel.communicator->world_size() > 1) {
    m.comm = parallel.communicator;
    m.comm_timeout = parallel.collective_timeout;
    m.rank = m.comm->rank();
    m.world_size = m.comm->world_size();
    m.primary = m.rank == 0;
  }
  if (m.resumed) m.resume_warning = adapt_to_world_size(*m.resumed, m.world_size);
  // On a GPU the loaders build batches in its pinned host memory (nullptr on CPU: plain memory).
  m.memory = data::BatchMemory::create(m.plan.backends.front()->pinned_host_allocator());
  m.data = load_run_data(m.cfg, *m.model, std::move(inputs.train), std::move(inputs.eval), m.memory,
                         {m.rank, m.world_size});
  // The defaults resolved: what config.json and --resume keep.
  m.cfg.val_split = m.data.val_split;
  m.cfg.task = m.data.task.name();
  if (m.cfg.steps > 0) {  // the epochs that hold --steps steps, the last one cut short
    const int64_t per_epoch = m.data.train->batches_per_epoch();
    m.cfg.epochs = (m.cfg.steps + per_epoch - 1) / per_epoch;
    // Resumed by another number of processes, the steps left may end an epoch later than that.
    if (m.resumed && !m.resume_warning.empty()) {
      const TrainingProgress& p = m.resumed->checkpoint.progress;
      m.cfg.epochs = std::max(m.cfg.epochs,
                              p.loader_epoch + (m.cfg.steps - p.step + p.loader_batch + per_epoch - 1) / per_epoch);
    }
  }
  GPUML_CHECK(m.cfg.eval_every == 0 || m.data.eval,
              "--eval-every {} needs held-out data, and {} has none: drop --eval-every, or hold some out (--val-split)",
              m.cfg.eval_every, inputs.train ? "the training arrays" : m.cfg.data);
  GPUML_CHECK(m.cfg.patience == 0 || m.data.eval,
              "--patience {} needs held-out data to judge improvement, and {} has no test split and --val-split is "
              "0: hold some out (--val-split 0.1) or drop --patience",
              m.cfg.patience, inputs.train ? "the training arrays" : m.cfg.data);
  m.read_initial_weights();
  m.run_dir = m.cfg.out;  // RunLogs makes it ready (train/run_dir.h), or names one when it is empty
  m.runner =
      std::make_unique<ModelRunner>(*m.model, m.cfg.optimizer, m.plan, m.cfg.seed, m.cfg.precision, m.data.task);
  m.runner->set_replay(m.cfg.cuda_graphs);
  if (m.resumed) m.runner->load(m.resumed->checkpoint.model, m.resumed->checkpoint.optimizer);
  else if (m.initial_weights) m.runner->load(*m.initial_weights, {});
  if (m.data.eval) std::tie(m.eval_x, m.eval_y) = normalised(*m.data.eval, m.data.task);
  if (m.comm) {
    // GPUML_COMM is compared with the flags: ranks that chose different gradient engines would
    // meet in different collectives (NCCL on one, MPI or Gloo on the other) and wait to the deadline.
    nlohmann::json run = config_to_json(m.cfg);
    run["GPUML_COMM"] = parallel.gradient_engine;
    check_ranks_agree(*m.comm, run, m.model->to_json(), m.comm_timeout);
  }
  m.open_gradient_communicator(parallel);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, m.cfg.zero == 0 || !m.gradient_comm,
                   "--zero 1 splits the update on CPUs (MPI or Gloo); with NCCL ({}) leave it off", m.gradients_note);
  m.runner->set_sync_batch_norm(m.cfg.sync_batchnorm);
  if (m.comm || m.gradient_comm) m.runner->set_communicator(m.comm, m.comm_timeout, m.gradient_comm);
  if (m.comm) {
    m.runner->set_zero(m.cfg.zero);
    m.runner->set_gradient_bucket_bytes(std::max<size_t>(1, static_cast<size_t>(m.cfg.bucket_mb * (1 << 20))));
    // Whatever each rank initialised or loaded, all start from rank 0's state.
    m.runner->broadcast_state_from_rank0();
  }
}

Trainer::~Trainer() = default;

void Trainer::add_callback(std::shared_ptr<Callback> callback) { impl_->callbacks.push_back(std::move(callback)); }
void Trainer::set_primary(bool primary) { impl_->primary = primary; }
void Trainer::request_stop() { impl_->stop_asked.store(true); }
const TrainConfig& Trainer::config() const { return impl_->cfg; }
const nn::Model& Trainer::model() const { return *impl_->model; }
const fs::path& Trainer::run_dir() const { return impl_->run_dir; }
NamedTensors Trainer::weights() const { return impl_->runner->model_tensors(); }

Checkpoint Trainer::checkpoint() const {
  TrainState st = impl_->initial_state();
  return st.checkpoint(impl_->fitted.value_or(st.progress));
}
std::string Trainer::device_used() const { return gpuml::device_used(impl_->plan, impl_->cfg.device); }
const PlanOptions& Trainer::plan() const { return impl_->plan; }
const std::string& Trainer::data_description() const { return impl_->data.description; }
const std::string& Trainer::resume_warning() const { return impl_->resume_warning; }

size_t Trainer::planned_peak_bytes() {
  ThreadScope threads(impl_->cfg.threads);
  return impl_->runner->planned_peak_bytes(impl_->cfg.batch_size);
}

TaskSums Trainer::evaluate(const data::InMemoryDataset& d) {
  ThreadScope threads(impl_->cfg.threads);
  auto [x, y] = normalised(impl_->data.task.prepare(d, *impl_->model, "the evaluation arrays"), impl_->data.task);
  return impl_->evaluate_over_ranks(x, y, impl_->data.task.eval_batch_rows(impl_->cfg.batch_size));
}

const Task& Trainer::task() const { return impl_->data.task; }

Tensor Trainer::predict(const Tensor& features) {
  ThreadScope threads(impl_->cfg.threads);
  return impl_->runner->predict(model_inputs(features, impl_->data.task));
}

TrainState Trainer::Impl::initial_state() {
  TrainState st;
  st.config = &cfg;
  st.model = &*model;
  st.runner = runner.get();
  st.run_dir = run_dir;
  st.eval_name = data.eval_name;
  st.split_note = data.split_note;
  st.data_description = data.description;
  st.class_names = data.class_names;
  st.tokenizer_json = data.tokenizer_json;
  st.task = data.task;
  st.task_note = data.task_note;
  st.resumed = resumed.has_value();
  if (resumed) st.resumed_from = resumed->path, st.saved_epochs = resumed->saved_epochs;
  st.weights_from = weights_from;
  st.primary = primary;
  st.steps_per_epoch = data.train->batches_per_epoch();
  st.device_used = gpuml::device_used(plan, cfg.device);
  if (!gradients_note.empty()) st.device_used += "; gradients: " + gradients_note;
  st.precision_note = precision_note(cfg.precision, *plan.backends.front());
  if (resumed) st.progress = resumed->checkpoint.progress;
  else st.progress.seed = cfg.seed;
  st.progress.world_size = world_size;
  // Resumed by more processes, a partly done epoch may hold no whole batch of the new size.
  st.progress.loader_batch = std::min(st.progress.loader_batch, st.steps_per_epoch);
  return st;
}

TrainResult Trainer::fit() {
  Impl& m = *impl_;
  ThreadScope threads(m.cfg.threads);
  m.stop_asked.store(false);
  TrainState st = m.initial_state();
  TrainResult result;
  m.call(&Callback::on_train_begin, st);
  m.run_dir = st.run_dir;  // where the callbacks write, if they do
  result.run_dir = m.run_dir.string();
  for (st.epoch = st.progress.epoch; st.epoch < m.cfg.epochs; ++st.epoch) {
    if (!m.run_epoch(st, result)) break;  // stopped inside the epoch
    m.end_epoch(st, result);
    if (st.stopping() || (m.cfg.steps > 0 && st.progress.step >= m.cfg.steps)) break;  // --steps done
  }
  m.finish(st, result);
  m.fitted = st.progress;
  m.call(&Callback::on_train_end, st);
  return result;
}

// One epoch's steps, from where a resumed run stopped; false when a stop request ended it early.
bool Trainer::Impl::run_epoch(TrainState& st, TrainResult& result) {
  TrainingProgress& progress = st.progress;
  data::BatchSource& loader = *data.train;
  const bool mid_epoch = progress.loader_epoch == st.epoch && progress.loader_batch > 0;
  st.first_batch = mid_epoch ? progress.loader_batch : 0;
  loader.seek({st.epoch, st.first_batch});
  // A run resumed mid-epoch starts from the sums its checkpoint saved for the epoch's first part.
  st.sums = mid_epoch ? TaskSums{progress.epoch_loss_sum, progress.epoch_weight, progress.epoch_score,
                                  progress.epoch_seen}
                      : TaskSums{};
  st.step_seconds = mid_epoch ? progress.epoch_step_seconds : 0;
  st.earlier_seconds = mid_epoch ? progress.epoch_seconds : 0;
  call(&Callback::on_epoch_begin, st);
  st.epoch_start = Clock::now();
  const int64_t total_steps = cfg.steps > 0 ? cfg.steps : st.steps_per_epoch * cfg.epochs;
  // One batch ahead: the next batch goes to the device on its copy stream while this step
  // computes (on CPU staging does nothing).
  for (std::optional<data::Batch> batch = loader.next(), upcoming; batch; batch = std::move(upcoming)) {
    upcoming = loader.next();
    if (upcoming) runner->stage_train_batch(upcoming->x, upcoming->y);
    st.lr = optim::lr_at(cfg.schedule, cfg.optimizer.lr, progress.step, st.steps_per_epoch, total_steps);
    st.batch_index = batch->index;
    call(&Callback::on_step_begin, st);
    auto t0 = Clock::now();
    // Each step moves the dropout stream by 2^32 Philox blocks: masks never repeat. With several
    // ranks each has its own stream (rank r of step s: s * ranks + r), so no two draw the same masks.
    const uint64_t rng_stream = static_cast<uint64_t>(progress.step + 1) * static_cast<uint64_t>(world_size) +
                                static_cast<uint64_t>(rank);
    StepStats s = runner->train_step(batch->x, batch->y, st.lr, progress.step + 1, rng_stream << 32);
    st.step_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    GPUML_CHECK(std::isfinite(s.loss),
                "the loss became {} at step {} (epoch {}, batch {}); training stopped. {}. Try a lower --lr or "
                "--clip-grad-norm",
                s.loss, progress.step + 1, st.epoch + 1, batch->index + 1,
                fs::exists(run_dir / "last.safetensors")
                    ? fmt::format("The last good checkpoint is {}", (run_dir / "last.safetensors").string())
                    : fmt::format("No checkpoint was written before it (none is in {})", run_dir.string()));
    ++progress.step;
    st.batch_rows = s.rows;  // the global batch's, with several ranks
    st.step_loss = s.loss;
    st.sums.add(s.loss, s.weight, s.score, st.batch_rows);
    const bool run_done = cfg.steps > 0 && progress.step >= cfg.steps;
    st.last_batch = batch->index + 1 == st.steps_per_epoch || run_done;
    st.at_max_steps = cfg.max_steps > 0 && progress.step >= cfg.max_steps;
    st.stop_requested = stop_asked.load();
    call(&Callback::on_step_end, st);
    if (cfg.eval_every > 0 && progress.step % cfg.eval_every == 0) evaluate_at_step(st);
    if (st.stopping() && !st.last_batch) {
      call(&Callback::on_epoch_stopped, st);
      result.seconds_training += st.epoch_seconds() - st.earlier_seconds;
      return false;
    }
    if (run_done) break;  // --steps: the run's last epoch ends here
  }
  return true;
}

// The task's sums over all rows of x and y (normalised). With several ranks each evaluates its part
// of them (BatchPart's rule) and the sums are added over the ranks in float64: every rank gets the
// figures of one process. The held-out evaluation (each epoch, --eval-every) and Trainer::evaluate.
TaskSums Trainer::Impl::evaluate_over_ranks(const Tensor& x, const Tensor& y, int64_t batch_rows) {
  if (!comm) return runner->evaluate(x, y, batch_rows);
  const data::BatchPart::Rows mine = data::BatchPart{rank, world_size}.rows_of(x.dim(0));
  const int64_t end = mine.first + mine.count;
  const TaskSums local =
      mine.count > 0 ? runner->evaluate(x.slice(0, mine.first, end), y.slice(0, mine.first, end), batch_rows)
                     : TaskSums{};
  return sum_over_ranks(*comm, local, comm_timeout);
}

// The held-out data's first `rows`.
TaskSums Trainer::Impl::evaluate_held_out(int64_t rows, int64_t batch_rows) {
  return evaluate_over_ranks(eval_x.slice(0, 0, rows), eval_y.slice(0, 0, rows), batch_rows);
}

// --eval-every: the held-out data's first eval_iters global batches (all of it for 0), the same rows each time.
void Trainer::Impl::evaluate_at_step(TrainState& st) {
  const int64_t global_batch = cfg.batch_size * world_size;
  const int64_t rows = cfg.eval_iters > 0 ? std::min(eval_x.dim(0), cfg.eval_iters * global_batch) : eval_x.dim(0);
  TaskSums ev = evaluate_held_out(rows, cfg.batch_size);
  st.step_evaluation = {st.progress.step, rows, data.task.mean_loss(ev), data.task.metric(ev)};
  call(&Callback::on_step_evaluated, st);
}

// The epoch's figures, evaluation, and the progress a checkpoint saves (the best metric so far).
void Trainer::Impl::end_epoch(TrainState& st, TrainResult& result) {
  EpochSummary& e = st.epoch_summary;
  e = EpochSummary{};
  e.epoch = st.epoch + 1;
  // Wall time of the epoch's training loop: steps plus any wait for data (no evaluation, no I/O).
  e.seconds = st.epoch_seconds();
  e.step_seconds = st.step_seconds;
  e.lr = st.lr;
  result.seconds_training += e.seconds - st.earlier_seconds;
  const Task& task = data.task;
  e.train_loss = result.train_loss = task.mean_loss(st.sums);
  e.train_metric = result.train_metric = task.metric(st.sums);
  if (data.eval) {  // without held-out data there is nothing to judge the epoch by (NaN)
    TaskSums ev = evaluate_held_out(eval_x.dim(0), task.eval_batch_rows(cfg.batch_size));
    result.eval_loss = task.mean_loss(ev);
    result.eval_metric = task.metric(ev);
  }
  e.eval_loss = result.eval_loss;
  e.eval_metric = result.eval_metric;
  // The share of the loop not spent in steps: waiting for the loader (and the loop's bookkeeping).
  e.data_wait = std::max(0.0, 1.0 - e.step_seconds / std::max(e.seconds, 1e-9));
  e.samples_per_second = static_cast<double>(st.sums.rows) / std::max(e.seconds, 1e-9);
  ++result.epochs_run;

  TrainingProgress& progress = st.progress;
  progress.epoch = st.epoch + 1;
  progress.loader_epoch = st.epoch + 1;
  progress.loader_batch = 0;
  progress.epoch_loss_sum = progress.epoch_weight = progress.epoch_score = 0;
  progress.epoch_seconds = progress.epoch_step_seconds = 0;
  progress.epoch_seen = 0;
  e.improved = data.eval && (task.better(result.eval_metric, progress.best_metric) || progress.best_epoch == 0);
  if (e.improved) {
    progress.best_metric = result.eval_metric;
    progress.best_epoch = st.epoch + 1;
    progress.epochs_without_improvement = 0;
  } else if (data.eval) {
    ++progress.epochs_without_improvement;
  }
  call(&Callback::on_epoch_end, st);
}

void Trainer::Impl::finish(TrainState& st, TrainResult& result) {
  result.task = data.task.name();
  result.metric_name = data.task.metric_name();
  if (st.progress.best_epoch > 0) result.best_metric = st.progress.best_metric;
  result.interrupted_by = st.stop_signal;
  result.stopped_at_max_steps = st.at_max_steps;
  result.stopped_early = st.stop_early;
  result.stop_requested = st.stop_requested;
  if (const AllReduceTimes* t = runner->all_reduce_times(); t != nullptr && t->steps > 0) {
    const double per_step = 1000.0 / static_cast<double>(t->steps);
    result.all_reduce_summary = fmt::format(
        "all-reduce (rank {} of {}, {}): {} per step ({}), {:.2f} ms per step, {:.0f}% of it while "
        "backward ran; the update waited {:.2f} ms per step for it{}",
        rank, world_size, comm->name(), count_of(t->buckets, "bucket"),
        t->scattered ? std::string("reduce-scattered, --zero 1") : fmt::format("--bucket-mb {}", cfg.bucket_mb),
        t->all_reduce_seconds * per_step,
        t->all_reduce_seconds > 0 ? 100.0 * t->overlapped_seconds / t->all_reduce_seconds : 0.0,
        t->waited_seconds * per_step,
        t->held_steps > 0 ? " (started after backward: the gradient graph has collective ops, --sync-batchnorm)"
                          : "");
  }
  if (!plan.backends.front()->can_capture()) return;
  std::string why;
  ReplayStats replay = runner->replay_stats(&why);
  result.replay_summary =
      !cfg.cuda_graphs ? "CUDA graphs off (--no-cuda-graphs)"
      : replay.captures > 0
          ? fmt::format("CUDA graphs: {} captured, {} of {} runs replayed", replay.captures, replay.replays,
                        replay.replays + replay.eager)
          : fmt::format("CUDA graphs: none replayed{}", why.empty() ? std::string() : ": " + why);
}

}  // namespace gpuml
