#include "train/model_runner.h"

#include <cstring>

#include "backend/dispatch.h"
#include "core/error.h"
#include "graph/autodiff.h"
#include "train/checkpoint.h"

#include <nlohmann/json.hpp>

namespace gpuml {

struct ModelRunner::Compiled {
  std::unique_ptr<Graph> graph;
  std::unique_ptr<Executor> executor;
  // Where the outputs are: 0 the loss; then the task's weight and score when it has them (-1:
  // absent), the new state (train), and the new buffer values (train, named in buffer_updates).
  int weight_at = -1, score_at = -1, state_at = -1;
  std::vector<std::string> buffer_updates;
  // A step of the plan is a collective op (synchronised BatchNorm's all_reduce_sum): the gradient
  // buckets then wait for the run to end (train_step_data_parallel).
  bool has_collective = false;
  // Gradient mode: whether output state_at + i (parameter i's gradient) is the only output reading
  // its memory, so that its kernel may write it straight into its bucket (all_reduce_in_buckets).
  std::vector<bool> sole_reader;
};

namespace {

// Optimizer state rows 1.. under torch.optim's slot names.
std::vector<std::string> slot_names(const optim::OptimizerConfig& o) {
  if (o.kind == "sgd") return o.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
  return {"exp_avg", "exp_avg_sq"};
}

Backend& home_backend(const PlanOptions& p) {
  return p.backends.empty() ? *backend_registry().all().front() : *p.backends.front();
}

double scalar_of(const Tensor& t) { return t.item_as_double(0); }

// A value of the plan (any layout, in host memory or on `home`'s device) into host memory `dst`
// (its numel floats), before the next step may reuse its memory.
void copy_to_host(const Tensor& value, float* dst, Backend& home) {
  const bool host = value.device().is_host();
  const Tensor dense = value.is_contiguous() ? value : contiguous(value, host ? backend_registry().reference() : home);
  if (host) {
    std::memcpy(dst, dense.raw_data(), dense.nbytes());
    return;
  }
  home.copy_to_host(dst, dense.raw_data(), dense.nbytes());
  home.synchronize();
}

}  // namespace

ModelRunner::ModelRunner(const nn::Model& model, optim::OptimizerConfig optimizer, PlanOptions plan, uint64_t seed,
                         Precision precision, Task task)
    : model_(nn::Model::from_json(model.to_json())),
      optimizer_(std::move(optimizer)),
      plan_options_(std::move(plan)),
      precision_(precision),
      task_(task) {
  apply_precision(precision_, plan_options_);
  for (const nn::ParamInfo& p : model_.param_infos()) {
    if (!p.trainable) {
      buffers_.push_back(p);
      continue;
    }
    GPUML_CHECK_KIND(ErrorKind::DType, p.dtype == DType::f32, "parameter {} is {}; gpuml trains f32 parameters",
                     p.name, p.dtype);
    int64_t n = numel(p.shape);
    slots_.push_back({p.name, p.shape, param_count_, n});
    // Each parameter starts kParamAlignment floats (256 bytes) into the row: cuBLASLt and cuDNN
    // pick vectorised and tensor-core kernels only for aligned operands (as PyTorch's allocator
    // gives them). The gap is zeros with zero gradients, which no optimizer moves.
    param_count_ += (n + kParamAlignment - 1) / kParamAlignment * kParamAlignment;
  }
  GPUML_CHECK(param_count_ > 0, "the model has no trainable parameters");
  state_rows_ = optim::state_rows(optimizer_);
  Backend& home = home_backend(plan_options_);
  for (Tensor& s : state_) s = Tensor::empty({state_rows_, param_count_}, DType::f32, home);
  std::vector<optim::ParamColumns> columns;
  for (const Slot& s : slots_) columns.push_back({s.shape, s.offset});
  decay_mask_ = to_backend(optim::decay_mask(optimizer_, columns, param_count_), home);
  std::map<std::string, Tensor> init = model_.init_values(seed);
  NamedTensors named(init.begin(), init.end());
  load(named, {});
}

ModelRunner::~ModelRunner() = default;

std::unique_ptr<ModelRunner::Compiled> ModelRunner::build(Mode mode, const Shape& x_shape) {
  auto c = std::make_unique<Compiled>();
  c->graph = std::make_unique<Graph>();
  Graph& g = *c->graph;
  g.set_autocast(autocast_for(precision_));  // bf16: forward and loss in mixed precision
  Sym x = g.input("x", {x_shape, DType::f32});
  Sym state = g.input("state", {{state_rows_, param_count_}, DType::f32});
  std::map<std::string, Sym> values;
  std::vector<Sym> params;
  for (const Slot& s : slots_) {
    Attrs a;  // row 0, columns [offset, offset + numel): a view of the state, not a copy
    a.axes = {0, 1};
    a.starts = {0, s.offset};
    a.ends = {1, s.offset + s.numel};
    Sym p = reshape(emit(OpId::slice, {state}, a), s.shape);
    values[s.name] = p;
    params.push_back(p);
  }
  for (const nn::ParamInfo& b : buffers_) values[b.name] = g.input(b.name, {b.shape, b.dtype});
  // Data parallelism trains through the Gradient graph only, so only it meets the other ranks.
  const bool synced = mode == Mode::Gradient && syncs_batch_norm();
  nn::ForwardContext ctx(g, mode == Mode::Train || mode == Mode::Gradient, [&](const std::string& name) {
                           auto it = values.find(name);
                           GPUML_CHECK_KIND(ErrorKind::Internal, it != values.end(), "no value named {}", name);
                           return it->second;
                         });
  ctx.sync_batch_norm = synced;
  Sym output = model_.forward(x, ctx);
  std::vector<Sym> outputs;
  if (mode == Mode::Predict || mode == Mode::Logits) {
    outputs.push_back(mode == Mode::Logits ? output : task_.predict(output));
  } else {
    Sym y = g.input("y", {task_.target_shape(x_shape[0], model_.output_shape()), task_.target_dtype()});
    Task::Terms terms = task_.emit(output, y);
    outputs = {terms.loss};
    auto add = [&](const std::optional<Sym>& s, int& at) {
      if (!s) return;
      at = static_cast<int>(outputs.size());
      outputs.push_back(*s);
    };
    add(terms.weight, c->weight_at);
    add(terms.score, c->score_at);
    g.set_autocast(Autocast::off);  // gradients, their concatenation and the update stay f32
    if (mode == Mode::Gradient) {
      // Each parameter's gradient an output of its own, ready as soon as backward writes it (no
      // concatenation at the end), of w_r x L_r (w_r: this rank's rows or counted tokens, L_r its
      // mean loss): the sum over this rank's rows, which the ranks add before dividing by their
      // total weight once (GradientBuckets), so the update sees d(sum_r w_r L_r)/dp / sum_r w_r,
      // the global batch's mean. This is also what keeps synchronised BatchNorm exact: the
      // all_reduce_sums' backward adds the ranks' upstream gradients unweighted, so each rank must
      // already differentiate its share of the global sum, as one process with the whole batch
      // would. Nothing is divided inside the graph (a rank whose batch weighs 0 adds 0).
      Sym weighted = terms.weight ? mul(terms.loss, *terms.weight) : mul_scalar(terms.loss, static_cast<double>(x_shape[0]));
      std::vector<Sym> grads = gradients(g, weighted, params);
      c->state_at = static_cast<int>(outputs.size());
      outputs.insert(outputs.end(), grads.begin(), grads.end());
    } else if (mode == Mode::Train) {
      std::vector<Sym> grads = gradients(g, terms.loss, params);
      std::vector<Sym> flat;  // laid out as the state's row: each gradient, then its gap's zeros
      for (size_t i = 0; i < grads.size(); ++i) {
        flat.push_back(reshape(grads[i], {-1}));
        const int64_t end = i + 1 < slots_.size() ? slots_[i + 1].offset : param_count_;
        const int64_t gap = end - slots_[i].offset - slots_[i].numel;
        if (gap > 0) flat.push_back(fill(g, {gap}, 0.0, DType::f32));
      }
      Sym flat_grad = flat.size() == 1 ? flat[0] : concat(flat, 0);
      Sym hyper = g.input("hyper", {{3}, DType::f32});
      Sym decay = g.input("decay", {{param_count_}, DType::f32});
      add(optim::emit_update(optimizer_, state, flat_grad, hyper, decay), c->state_at);
    }
    if (mode == Mode::Train || mode == Mode::Gradient) {
      for (const auto& [name, value] : ctx.buffer_updates) {
        c->buffer_updates.push_back(name);
        outputs.push_back(value);
      }
    }
  }
  c->executor = std::make_unique<Executor>(plan_graph(g, outputs, plan_options_));
  if (mode == Mode::Gradient) {
    const Plan& plan = c->executor->plan();
    std::map<int, int> outputs_per_root;
    for (int v : plan.outputs) ++outputs_per_root[plan.root_of(v)];
    for (size_t i = 0; i < slots_.size(); ++i)
      c->sole_reader.push_back(outputs_per_root[plan.root_of(plan.outputs[static_cast<size_t>(c->state_at) + i])] == 1);
  }
  for (const PlanStep& step : c->executor->plan().steps)
    if (step.kind == StepKind::Kernel && op_info(step.op).kind == OpKind::Collective) c->has_collective = true;
  return c;
}

// The optimizer update alone, for data parallelism: (state, summed gradient, 1 / total weight) -> new
// state, over all P columns or (--zero 1) this rank's share.
std::unique_ptr<ModelRunner::Compiled> ModelRunner::build_update(int64_t columns) {
  auto c = std::make_unique<Compiled>();
  c->graph = std::make_unique<Graph>();
  Graph& g = *c->graph;
  Sym state = g.input("state", {{state_rows_, columns}, DType::f32});
  Sym grad = g.input("grad", {{columns}, DType::f32});
  Sym hyper = g.input("hyper", {{3}, DType::f32});
  Sym decay = g.input("decay", {{columns}, DType::f32});
  // 1 / (the ranks' total weight): "grad" is their sum, divided inside the update (no pass of its own).
  Sym grad_scale = g.input("grad_scale", {{1}, DType::f32});
  // A share of the columns clips by the whole gradient's norm (every rank holds the whole sum).
  std::optional<Sym> whole;
  if (columns != param_count_ && optimizer_.clip_grad_norm > 0.0)
    whole = g.input("whole_grad", {{param_count_}, DType::f32});
  c->state_at = 0;
  c->executor = std::make_unique<Executor>(
      plan_graph(g, {optim::emit_update(optimizer_, state, grad, hyper, decay, grad_scale, whole)}, plan_options_));
  return c;
}

ModelRunner::Compiled& ModelRunner::compiled(Mode mode, const Shape& x_shape) {
  std::string key = fmt::format("{}{}", static_cast<int>(mode), shape_str(x_shape));
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    std::unique_ptr<Compiled> built = mode == Mode::Update        ? build_update(param_count_)
                                      : mode == Mode::UpdateShard ? build_update(shard_columns_)
                                                                  : build(mode, x_shape);
    it = cache_.emplace(key, std::move(built)).first;
  }
  return *it->second;
}

std::map<std::string, Tensor> ModelRunner::buffer_feeds() const { return buffer_values_; }

RunOptions ModelRunner::replay_options() const {
  RunOptions run;
  run.replay = replay_;
  run.collectives = {comm_.get(), comm_timeout_};  // the synchronised BatchNorm's all_reduce_sums
  return run;
}

ReplayStats ModelRunner::replay_stats(std::string* note) const {
  ReplayStats total;
  for (const auto& [key, c] : cache_) {
    const ReplayStats& s = c->executor->replay_stats();
    total.captures += s.captures;
    total.replays += s.replays;
    total.eager += s.eager;
    if (note != nullptr && note->empty()) *note = c->executor->replay_note();
  }
  return total;
}

StepStats ModelRunner::stats_of(const Compiled& c, const std::vector<Tensor>& out, int64_t rows) const {
  return {scalar_of(out[0]), c.weight_at >= 0 ? scalar_of(out[c.weight_at]) : static_cast<double>(rows),
          c.score_at >= 0 ? scalar_of(out[c.score_at]) : 0.0, rows};
}

void ModelRunner::set_communicator(std::shared_ptr<Communicator> comm, std::chrono::milliseconds timeout,
                                   std::shared_ptr<Communicator> gradients) {
  GPUML_CHECK_KIND(ErrorKind::Internal, !shard_slots_stale_,
                   "--zero 1: gather_sharded_state() before changing the communicator");
  comm_ = comm && comm->world_size() > 1 ? std::move(comm) : nullptr;
  comm_timeout_ = timeout;
  shard_ready_ = false;
  reduced_grad_ = Tensor();  // may borrow the buckets' memory
  bucket_views_.clear();
  buckets_.reset();
  cache_.clear();  // the Gradient graphs hold all_reduce_sums or not (syncs_batch_norm)
  if (gradients) {
    const Device home = home_backend(plan_options_).device();
    GPUML_CHECK(gradients->memory_device() == home, "the {} communicator works on {} memory, the model on {}",
                gradients->name(), gradients->memory_device().str(), home.str());
  }
  gradient_comm_ = std::move(gradients);
}

void ModelRunner::set_zero(int stage) {
  GPUML_CHECK(stage == 0 || stage == 1, "--zero takes 0 (off) or 1 (the optimizer update split over the ranks), got {}",
              stage);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, stage == 0 || !comm_ || home_backend(plan_options_).device().is_host(),
                   "--zero 1 splits the update on CPUs: the model is on {}; leave it off",
                   home_backend(plan_options_).device().str());
  if (zero_ == (stage == 1)) return;
  GPUML_CHECK_KIND(ErrorKind::Internal, !shard_slots_stale_, "--zero 1: gather_sharded_state() before turning it off");
  zero_ = stage == 1;
  shard_ready_ = false;
  reduced_grad_ = Tensor();  // may borrow the buckets' memory
  bucket_views_.clear();
  buckets_.reset();          // --zero 1 reduce-scatters (scatters()): cut again at the next step
}

// Rank `rank`'s share of `columns` state columns under --zero 1: (first column, how many).
static std::pair<int64_t, int64_t> shard_of(int64_t columns, int rank, int ranks) {
  const int64_t per = (columns + ranks - 1) / ranks;
  const int64_t begin = std::min(columns, per * rank);
  return {begin, std::min(columns, begin + per) - begin};
}

// --zero 1's update: this rank's columns from the all-reduced gradient (reduced_grad_, whole on
// every rank), then the new parameters all-gathered into the next state's row 0.
void ModelRunner::update_sharded(const std::map<std::string, Tensor>& feeds) {
  Backend& home = home_backend(plan_options_);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, home.device().is_host(),
                   "--zero 1 runs on the CPU (its state on {}): on GPUs, leave it off", home.device().str());
  const int ranks = comm_->world_size(), rank = comm_->rank();
  const int64_t p = param_count_;
  if (!shard_ready_) {
    std::tie(shard_begin_, shard_columns_) = shard_of(p, rank, ranks);
    cache_.erase(fmt::format("{}{}", static_cast<int>(Mode::UpdateShard), shape_str({})));
    for (Tensor& s : shard_state_) s = Tensor::empty({state_rows_, shard_columns_}, DType::f32);
    shard_decay_ = Tensor::empty({shard_columns_}, DType::f32);
    const float* whole = static_cast<const float*>(state_[current_].raw_data());
    float* mine = static_cast<float*>(shard_state_[0].raw_data());
    for (int64_t row = 0; row < state_rows_; ++row)
      std::copy_n(whole + row * p + shard_begin_, shard_columns_, mine + row * shard_columns_);
    std::copy_n(static_cast<const float*>(decay_mask_.raw_data()) + shard_begin_, shard_columns_,
                static_cast<float*>(shard_decay_.raw_data()));
    shard_current_ = 0;
    shard_ready_ = true;
  }
  std::map<std::string, Tensor> shard_feeds = feeds;
  shard_feeds["state"] = shard_state_[shard_current_];
  if (scatters()) {  // the buckets' reduce-scatter left this rank's share alone
    std::span<float> share = buckets_->shard_gradient();
    shard_feeds["grad"] = Tensor(Storage::borrow(share.data(), share.size_bytes(), home.device()),
                                 {static_cast<int64_t>(share.size())}, {1}, 0, DType::f32)
                              .slice(0, 0, shard_columns_);
  } else {
    shard_feeds["grad"] = reduced_grad_.slice(0, shard_begin_, shard_begin_ + shard_columns_);
  }
  shard_feeds["decay"] = shard_decay_;
  if (optimizer_.clip_grad_norm > 0.0) shard_feeds["whole_grad"] = reduced_grad_;
  if (shard_columns_ > 0) {  // (more ranks than columns leaves the last ones none)
    Compiled& update = compiled(Mode::UpdateShard, {});
    RunOptions run = replay_options();
    run.output_buffers[0] = shard_state_[1 - shard_current_];
    update.executor->run(shard_feeds, run);
  }
  shard_current_ = 1 - shard_current_;
  // The new parameters: this rank's into the next state's row 0, then everyone's.
  float* next = static_cast<float*>(state_[1 - current_].raw_data());
  std::copy_n(static_cast<const float*>(shard_state_[shard_current_].raw_data()), shard_columns_, next + shard_begin_);
  gather_row(next, "the updated parameters (--zero 1)");
  current_ = 1 - current_;
  shard_slots_stale_ = true;
}

// Every rank's columns of one (P,) row of the state, from their owners: one all-gather in place
// when the ranks' shares are equal (P divisible by the ranks), else one broadcast per rank.
void ModelRunner::gather_row(float* row, const char* what) {
  const int ranks = comm_->world_size();
  const CollectiveCall call{what, comm_timeout_};
  auto bytes = [&](int64_t begin, int64_t columns) {
    return std::span<std::byte>(reinterpret_cast<std::byte*>(row + begin), static_cast<size_t>(columns) * sizeof(float));
  };
  if (shard_columns_ * ranks == param_count_) {
    comm_->all_gather(bytes(shard_begin_, shard_columns_), bytes(0, param_count_), call);
    return;
  }
  for (int r = 0; r < ranks; ++r) {
    const auto [begin, columns] = shard_of(param_count_, r, ranks);
    if (columns > 0) comm_->broadcast(bytes(begin, columns), r, call);
  }
}

void ModelRunner::gather_sharded_state() {
  if (!shard_slots_stale_) return;
  float* whole = static_cast<float*>(state_[current_].raw_data());
  const float* mine = static_cast<const float*>(shard_state_[shard_current_].raw_data());
  for (int64_t row = 1; row < state_rows_; ++row) {
    std::copy_n(mine + row * shard_columns_, shard_columns_, whole + row * param_count_ + shard_begin_);
    gather_row(whole + row * param_count_, "the optimizer state (--zero 1)");
  }
  shard_slots_stale_ = false;
}

void ModelRunner::set_sync_batch_norm(bool on) {
  if (sync_batch_norm_ == on) return;
  sync_batch_norm_ = on;
  cache_.clear();
}

// The buffers of every rank become rank 0's, in one broadcast of their bytes (all dtypes).
void ModelRunner::broadcast_buffers_from_rank0(std::string_view what) {
  if (!comm_ || buffer_values_.empty()) return;
  std::vector<Tensor> hosts;
  size_t total = 0;
  for (auto& [name, value] : buffer_values_) {
    hosts.push_back(contiguous(value, backend_registry().reference()));
    total += hosts.back().nbytes();
  }
  std::vector<std::byte> packed(total);
  size_t at = 0;
  for (const Tensor& t : hosts) {
    std::memcpy(packed.data() + at, t.raw_data(), t.nbytes());
    at += t.nbytes();
  }
  comm_->broadcast(packed, 0, {what, comm_timeout_});
  at = 0;
  size_t i = 0;
  for (auto& [name, value] : buffer_values_) {
    Tensor& t = hosts[i++];
    std::memcpy(t.raw_data(), packed.data() + at, t.nbytes());
    at += t.nbytes();
    value = t;
  }
}

void ModelRunner::set_gradient_bucket_bytes(size_t bytes) {
  GPUML_CHECK(bytes > 0, "the gradient bucket size must be positive, got {} bytes", bytes);
  bucket_bytes_ = bytes;
  reduced_grad_ = Tensor();  // may borrow the buckets' memory
  bucket_views_.clear();
  buckets_.reset();  // cut again at the next step
}

const AllReduceTimes* ModelRunner::all_reduce_times() const { return buckets_ ? &buckets_->times() : nullptr; }

void ModelRunner::broadcast_state_from_rank0() {
  if (!comm_) return;
  gather_sharded_state();  // rank 0's slots whole first (collective, as this is)
  shard_ready_ = false;    // and each rank's share made again from the state broadcast
  Backend& home = home_backend(plan_options_);
  const CollectiveCall call{"the initial parameters and optimizer state", comm_timeout_};
  Tensor host = Tensor::empty({state_rows_, param_count_}, DType::f32);
  home.copy_to_host(host.raw_data(), state_[current_].raw_data(), host.nbytes());
  home.synchronize();
  comm_->broadcast({static_cast<std::byte*>(host.raw_data()), host.nbytes()}, 0, call);
  home.copy_to_device(state_[current_].raw_data(), host.raw_data(), host.nbytes());
  home.synchronize();
  // BatchNorm running statistics (and their step counts): rank 0's too.
  broadcast_buffers_from_rank0("the buffers (BatchNorm statistics)");
}

StepStats ModelRunner::train_step(const Tensor& x, const Tensor& y, double lr, int64_t step, uint64_t rng_offset) {
  if (comm_ || gradient_comm_) return train_step_data_parallel(x, y, lr, step, rng_offset);
  Compiled& c = compiled(Mode::Train, x.shape());
  std::map<std::string, Tensor> feeds = buffer_feeds();
  feeds["x"] = x;
  feeds["y"] = y;
  feeds["state"] = state_[current_];
  feeds["hyper"] = optim::hyper_values(optimizer_, lr, step);
  feeds["decay"] = decay_mask_;
  RunOptions run = replay_options();
  run.rng_offset = rng_offset;
  run.output_buffers[c.state_at] = state_[1 - current_];
  std::vector<Tensor> out = c.executor->run(feeds, run);
  current_ = 1 - current_;
  // New BatchNorm running statistics (and num_batches_tracked) feed the next step.
  for (size_t i = 0; i < c.buffer_updates.size(); ++i)
    buffer_values_[c.buffer_updates[i]] = out[static_cast<size_t>(c.state_at) + 1 + i];
  return stats_of(c, out, x.dim(0));
}

// The gradient graph, then the update graph. Over MPI or Gloo (comm_) the gradients go into their
// buckets as backward writes them (the all-reduces run meanwhile on the buckets' thread; the loss
// sums ride in the first bucket). Over NCCL (gradient_comm_) they stay in device memory and are
// all-reduced once the run has ended (all_reduce_on_device).
StepStats ModelRunner::train_step_data_parallel(const Tensor& x, const Tensor& y, double lr, int64_t step,
                                                uint64_t rng_offset) {
  Compiled& c = compiled(Mode::Gradient, x.shape());
  const int params = static_cast<int>(slots_.size());
  std::map<std::string, Tensor> feeds = buffer_feeds();
  feeds["x"] = x;
  feeds["y"] = y;
  feeds["state"] = state_[current_];
  RunOptions run = replay_options();
  run.rng_offset = rng_offset;
  std::vector<Tensor> out;
  StepStats global;
  if (gradient_comm_) {
    out = c.executor->run(feeds, run);
    global = all_reduce_on_device(c, out, x.dim(0), step);
  } else {
    global = all_reduce_in_buckets(c, feeds, run, x.dim(0), step, out);
  }
  for (size_t i = 0; i < c.buffer_updates.size(); ++i)
    buffer_values_[c.buffer_updates[i]] = out[static_cast<size_t>(c.state_at + params) + i];
  // Each rank's running statistics are of its own rows: rank 0's for all (PyTorch DDP's
  // broadcast_buffers), so that evaluation and checkpoints agree. Synchronised, every rank has
  // computed the same bits from the same all-reduced sums: nothing to send.
  if (!syncs_batch_norm()) broadcast_buffers_from_rank0("the BatchNorm running statistics");

  std::map<std::string, Tensor> update_feeds{
      {"hyper", optim::hyper_values(optimizer_, lr, step)},
      {"grad_scale", Tensor::from_values({1}, std::vector<double>{1.0 / global.weight}, DType::f32)}};
  if (zero_active()) {
    update_sharded(update_feeds);
    return global;
  }
  Compiled& update = compiled(Mode::Update, {});
  update_feeds["state"] = state_[current_];
  update_feeds["grad"] = reduced_grad_;
  update_feeds["decay"] = decay_mask_;
  RunOptions update_run = replay_options();
  update_run.output_buffers[0] = state_[1 - current_];
  update.executor->run(update_feeds, update_run);
  current_ = 1 - current_;
  return global;
}

// The gradient graph's run with its gradients handed to the buckets as backward writes them; the
// buckets' sums land in reduced_grad_ (on CPU the buckets' own memory, which backward writes the
// gradients into directly), to be divided by the total weight inside the update.
StepStats ModelRunner::all_reduce_in_buckets(const Compiled& c, const std::map<std::string, Tensor>& feeds,
                                             RunOptions run, int64_t rows, int64_t step, std::vector<Tensor>& out) {
  Backend& home = home_backend(plan_options_);
  if (!buckets_) {
    std::vector<GradientRange> ranges;
    for (size_t i = 0; i < slots_.size(); ++i)
      ranges.push_back({slots_[i].offset, i + 1 < slots_.size() ? slots_[i + 1].offset : param_count_});
    buckets_ = std::make_unique<GradientBuckets>(comm_, std::move(ranges), bucket_bytes_, comm_timeout_, scatters());
    std::span<float> host = buckets_->gradient();
    // On CPU the update reads the reduced gradient where the all-reduce left it.
    reduced_grad_ = home.device().is_host()
                        ? Tensor(Storage::borrow(host.data(), host.size_bytes(), home.device()), {param_count_},
                                 contiguous_strides({param_count_}), 0, DType::f32)
                        : Tensor::empty({param_count_}, DType::f32, home);
    bucket_views_.clear();
    if (home.device().is_host())
      for (const Slot& slot : slots_)
        bucket_views_.emplace_back(Storage::borrow(host.data() + slot.offset, slot.numel * sizeof(float), home.device()),
                                   slot.shape, contiguous_strides(slot.shape), 0, DType::f32);
  }
  const int params = static_cast<int>(slots_.size());
  // This rank's loss, weight and score, as backward's gradients arrive, go to the buckets.
  double loss = 0, weight = static_cast<double>(rows), score = 0;
  int scalars_missing = 1 + (c.weight_at >= 0) + (c.score_at >= 0);
  run.ready_outputs.insert(0);
  if (c.weight_at >= 0) run.ready_outputs.insert(c.weight_at);
  if (c.score_at >= 0) run.ready_outputs.insert(c.score_at);
  for (int i = 0; i < params; ++i) run.ready_outputs.insert(c.state_at + i);
  // On CPU the kernel that makes a gradient writes it into its bucket (no copy), where it can: not
  // where another output reads the same memory (a view of it, a tied weight), which would then be
  // copied out of a bucket that may already be inside its all-reduce.
  for (size_t i = 0; i < bucket_views_.size(); ++i)
    if (c.sole_reader[i]) run.output_buffers[c.state_at + static_cast<int>(i)] = bucket_views_[i];
  std::span<float> gradient = buckets_->gradient();
  run.on_output_ready = [&](int index, const Tensor& value) {
    if (index >= c.state_at && index < c.state_at + params) {
      const Slot& slot = slots_[static_cast<size_t>(index - c.state_at)];
      GPUML_CHECK_KIND(ErrorKind::Internal, value.dtype() == DType::f32 && value.numel() == slot.numel,
                       "the gradient of {} is {} {}, expected f32 {}", slot.name, value.dtype(),
                       shape_str(value.shape()), shape_str(slot.shape));
      if (value.raw_data() != gradient.data() + slot.offset) copy_to_host(value, gradient.data() + slot.offset, home);
      buckets_->parameter_ready(static_cast<size_t>(index - c.state_at));
      return;
    }
    const double v = scalar_of(value.device().is_host() ? value : to_backend(value, backend_registry().reference()));
    if (index == 0) loss = v;
    else if (index == c.weight_at) weight = v;
    else score = v;
    if (--scalars_missing == 0)
      buckets_->scalars_ready({static_cast<float>(loss * weight), static_cast<float>(weight), static_cast<float>(score),
                               static_cast<float>(rows)});
  };
  // A plan with a collective op (--sync-batchnorm's all_reduce_sums, forward and backward) calls
  // the communicator from this thread during the run: its buckets are held until the run has
  // ended and then launched in the fixed order, no overlap. Otherwise the communication thread
  // could all-reduce a bucket while a kernel here all-reduces statistics (two threads on one
  // communicator; MPI is THREAD_SERIALIZED), and the ranks could interleave the two kinds of
  // collectives in different orders, pairing the wrong data.
  buckets_->begin_step(/*hold*/ c.has_collective);
  ReducedStep reduced;
  try {
    out = c.executor->run(feeds, run);
    buckets_->backward_done();
    reduced = buckets_->finish(step);
  } catch (...) {
    buckets_->abandon();  // this rank failed alone: launch nothing more
    throw;
  }
  std::span<float> reduced_gradient = buckets_->gradient();
  if (!home.device().is_host())
    home.copy_to_device(reduced_grad_.raw_data(), reduced_gradient.data(), reduced_gradient.size_bytes());
  return {reduced.loss_sum / reduced.weight, reduced.weight, reduced.score, reduced.rows};
}

// The buckets' sums in device memory: each parameter's gradient of loss x weight copied to its
// offset of one (P + 4,) buffer, the four sums beside them, one all-reduce, then the summed
// gradient into reduced_grad_ (the update's input, which divides it by the total weight).
StepStats ModelRunner::all_reduce_on_device(const Compiled& c, const std::vector<Tensor>& out, int64_t rows,
                                            int64_t step) {
  Backend& home = home_backend(plan_options_);
  const int64_t p = param_count_;
  if (!device_reduce_.defined()) {
    device_reduce_ = Tensor::empty({p + 4}, DType::f32, home);
    // The alignment gaps between parameters are never written: zeros, as in the fused step.
    const std::vector<float> zeros(static_cast<size_t>(p) + 4, 0.0f);
    home.copy_to_device(device_reduce_.raw_data(), zeros.data(), zeros.size() * sizeof(float));
  }
  float* flat = static_cast<float*>(device_reduce_.raw_data());
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    const Tensor& value = out[static_cast<size_t>(c.state_at) + i];
    GPUML_CHECK_KIND(ErrorKind::Internal, value.dtype() == DType::f32 && value.numel() == slot.numel,
                     "the gradient of {} is {} {}, expected f32 {}", slot.name, value.dtype(),
                     shape_str(value.shape()), shape_str(slot.shape));
    const Tensor dense = value.is_contiguous() ? value : contiguous(value, home);
    home.copy_within(flat + slot.offset, dense.raw_data(), static_cast<size_t>(slot.numel) * sizeof(float));
  }
  const StepStats local = stats_of(c, out, rows);
  const float sums[4] = {static_cast<float>(local.loss * local.weight), static_cast<float>(local.weight),
                         static_cast<float>(local.score), static_cast<float>(local.rows)};
  float* device_sums = flat + p;
  home.copy_to_device(device_sums, sums, sizeof sums);
  // Ordered after the copies on the backend's default stream (CollectiveCall::stream nullptr).
  gradient_comm_->all_reduce({flat, static_cast<size_t>(p) + 4}, ReduceOp::sum, {"gradients", comm_timeout_});
  float total[4];
  home.copy_to_host(total, device_sums, sizeof total);
  home.synchronize();
  GPUML_CHECK(total[1] > 0, "data parallel step {}: the ranks' batches carry no weight (no rows or tokens)", step);
  // The sum, into the same buffer every step (a replayed update graph reads its input where it was
  // captured); the update divides it by total[1].
  if (!reduced_grad_.defined()) reduced_grad_ = Tensor::empty({p}, DType::f32, home);
  home.copy_within(reduced_grad_.raw_data(), flat, static_cast<size_t>(p) * sizeof(float));
  return {total[0] / total[1], total[1], total[2], static_cast<int64_t>(total[3])};
}

void ModelRunner::stage_train_batch(const Tensor& x, const Tensor& y) {
  compiled(Mode::Train, x.shape()).executor->stage({{"x", x}, {"y", y}});
}

TaskSums ModelRunner::evaluate(const Tensor& x, const Tensor& y, int64_t batch_size) {
  TaskSums sums;
  int64_t n = x.dim(0);
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    Tensor xb = x.slice(0, begin, end), yb = y.slice(0, begin, end);
    Compiled& c = compiled(Mode::Eval, xb.shape());
    std::map<std::string, Tensor> feeds = buffer_feeds();
    feeds["x"] = xb;
    feeds["y"] = yb;
    feeds["state"] = state_[current_];
    StepStats s = stats_of(c, c.executor->run(feeds, replay_options()), end - begin);
    sums.add(s.loss, s.weight, s.score, end - begin);
  }
  return sums;
}

Tensor ModelRunner::predict(const Tensor& x, int64_t batch_size, bool logits) {
  int64_t n = x.dim(0);
  std::vector<Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    Tensor xb = x.slice(0, begin, std::min(n, begin + batch_size));
    Compiled& c = compiled(logits ? Mode::Logits : Mode::Predict, xb.shape());
    std::map<std::string, Tensor> feeds = buffer_feeds();
    feeds["x"] = xb;
    feeds["state"] = state_[current_];
    parts.push_back(c.executor->run(feeds, replay_options())[0]);
  }
  if (parts.size() == 1) return parts[0];
  return run_op(backend_registry().get("cpu"), OpId::concat, parts, [] {
    Attrs a;
    a.axis = 0;
    return a;
  }());
}

size_t ModelRunner::planned_peak_bytes(int64_t batch_size) {
  Shape x_shape{batch_size};
  for (int64_t d : model_.input_shape()) x_shape.push_back(d);
  return compiled(Mode::Train, x_shape).executor->plan().peak_bytes();
}

Tensor ModelRunner::state_snapshot() const { return to_backend(state_[current_], backend_registry().reference()); }

int64_t ModelRunner::state_offset(const std::string& name) const {
  for (const Slot& s : slots_)
    if (s.name == name) return s.offset;
  GPUML_FAIL(ErrorKind::Invalid, "no trainable parameter named '{}'", name);
}

NamedTensors ModelRunner::model_tensors() const {
  Tensor host = state_snapshot();
  NamedTensors out;
  for (const nn::ParamInfo& p : model_.param_infos()) {
    if (!p.trainable) {
      out.emplace_back(p.name, buffer_values_.at(p.name));
      continue;
    }
    for (const Slot& s : slots_)
      if (s.name == p.name) out.emplace_back(p.name, contiguous(host.slice(1, s.offset, s.offset + s.numel).slice(0, 0, 1).reshape(s.shape), backend_registry().reference()));
  }
  return model_.with_ties(std::move(out));
}

NamedTensors ModelRunner::optimizer_tensors() const {
  GPUML_CHECK_KIND(ErrorKind::Internal, !shard_slots_stale_,
                   "--zero 1: the optimizer state is split over the ranks; gather_sharded_state() first");
  Tensor host = state_snapshot();
  NamedTensors out;
  std::vector<std::string> names = slot_names(optimizer_);
  for (size_t row = 0; row < names.size(); ++row)
    for (const Slot& s : slots_) {
      Tensor part = host.slice(0, static_cast<int64_t>(row) + 1, static_cast<int64_t>(row) + 2)
                        .slice(1, s.offset, s.offset + s.numel)
                        .reshape(s.shape);
      out.emplace_back(std::string(kOptimizerPrefix) + names[row] + "." + s.name,
                       contiguous(part, backend_registry().reference()));
    }
  return out;
}

void ModelRunner::load(const NamedTensors& model, const NamedTensors& optimizer) {
  NamedTensors untied = model_.untie(model);
  std::map<std::string, Tensor> given(untied.begin(), untied.end());
  std::vector<std::string> missing, extra;
  for (const nn::ParamInfo& p : model_.param_infos())
    if (!given.count(p.name)) missing.push_back(p.name);
  for (const auto& [name, t] : given) {
    bool known = false;
    for (const nn::ParamInfo& p : model_.param_infos()) known |= p.name == name;
    if (!known) extra.push_back(name);
  }
  GPUML_CHECK(missing.empty() && extra.empty(), "weights do not match the model: missing [{}], unexpected [{}]",
              fmt::join(missing, ", "), fmt::join(extra, ", "));
  Tensor host = Tensor::empty({state_rows_, param_count_}, DType::f32);
  std::memset(host.raw_data(), 0, host.nbytes());  // fresh optimizer state is zero, as in torch
  float* row0 = host.data<float>();
  for (const nn::ParamInfo& p : model_.param_infos()) {
    const Tensor& t = given.at(p.name);
    GPUML_CHECK_SHAPE(t.shape() == p.shape, "weight '{}' has shape {}, the model expects {}", p.name,
                      shape_str(t.shape()), shape_str(p.shape));
    if (!p.trainable) {
      buffer_values_[p.name] = run_op(backend_registry().reference(), OpId::cast, {t}, [&] {
        Attrs a;
        a.dtype = p.dtype;
        return a;
      }());
      continue;
    }
    std::vector<double> v = t.to_doubles();
    for (const Slot& s : slots_)
      if (s.name == p.name)
        for (int64_t i = 0; i < s.numel; ++i) row0[s.offset + i] = static_cast<float>(v[i]);
  }
  std::vector<std::string> names = slot_names(optimizer_);
  std::map<std::string, Tensor> opt(optimizer.begin(), optimizer.end());
  for (size_t row = 0; row < names.size() && !optimizer.empty(); ++row)
    for (const Slot& s : slots_) {
      std::string key = std::string(kOptimizerPrefix) + names[row] + "." + s.name;
      auto it = opt.find(key);
      GPUML_CHECK(it != opt.end(), "optimizer state lacks '{}' (was it saved with another optimizer?)", key);
      GPUML_CHECK_SHAPE(it->second.shape() == s.shape, "optimizer state '{}' has shape {}, expected {}", key,
                        shape_str(it->second.shape()), shape_str(s.shape));
      std::vector<double> v = it->second.to_doubles();
      float* dst = row0 + (row + 1) * param_count_ + s.offset;
      for (int64_t i = 0; i < s.numel; ++i) dst[i] = static_cast<float>(v[i]);
    }
  Backend& home = home_backend(plan_options_);
  shard_ready_ = false;  // --zero 1: each rank's share made again from the loaded state
  shard_slots_stale_ = false;
  home.copy_to_device(state_[current_].raw_data(), host.raw_data(), host.nbytes());
  home.synchronize();
}

}  // namespace gpuml
