#include "graph/executor.h"

#include <chrono>
#include <cstdlib>
#include <set>

#include "backend/dispatch.h"
#include "core/error.h"

#include <algorithm>

namespace gpuml {

Executor::Executor(Plan plan) : plan_(std::move(plan)) {
  for (const ArenaPlan& a : plan_.arenas) {
    GPUML_CHECK(a.allocator != nullptr, "executor: no backend allocates memory on {}", a.device.str());
    arenas_.push_back(Storage::make(*a.allocator, a.peak_bytes));
  }
  values_.resize(plan_.values.size());
  for (size_t i = 0; i < plan_.values.size(); ++i) {
    const PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::Arena) continue;
    const std::shared_ptr<Storage>& arena = arenas_[v.arena];
    GPUML_CHECK_KIND(ErrorKind::Internal, v.offset + v.bytes <= arena->bytes(),
                     "executor: value v{} [{}, +{}) is outside its arena of {} bytes", i, v.offset, v.bytes,
                     arena->bytes());
    void* ptr = static_cast<char*>(arena->data()) + v.offset;
    auto storage = Storage::borrow(ptr, v.bytes, arena->device(), arena);
    values_[i] = Tensor(std::move(storage), v.type.shape, contiguous_strides(v.type.shape), 0, v.type.dtype);
  }
  arena_values_ = values_;
  const char* profile = std::getenv("GPUML_PROFILE");
  profile_ = profile != nullptr && (std::string(profile) == "1" || std::string(profile) == "shapes");
  profile_shapes_ = profile_ && std::string(profile) == "shapes";
  producer_.assign(plan_.values.size(), -1);
  for (size_t s = 0; s < plan_.steps.size(); ++s)
    for (int k = 0; k < plan_.steps[s].output_count; ++k) producer_[plan_.steps[s].output + k] = static_cast<int>(s);
  // Replay needs every kernel on one backend that can capture, and no copies between devices
  // (they synchronize the host).
  Backend* only = nullptr;
  bool one_backend = true, copies = false;
  for (const PlanStep& step : plan_.steps) {
    if (step.kind == StepKind::Kernel) {
      if (only == nullptr) only = step.backend;
      one_backend &= only == step.backend;
    }
    copies |= step.kind == StepKind::Transfer && plan_.values[step.output].home != ValueHome::Alias;
  }
  if (only == nullptr) replay_note_ = "the plan runs no kernel";
  else if (!one_backend) replay_note_ = "the plan runs kernels on more than one backend";
  else if (copies) replay_note_ = "the plan copies values between devices";
  else if (!only->can_capture()) replay_note_ = fmt::format("backend {} cannot capture work for replay", only->name());
  else if (profile_) replay_note_ = "GPUML_PROFILE times every step";
  else capture_backend_ = only;
}

Executor::~Executor() {
  for (auto it = staged_.begin(); it != staged_.end();) drop_staged((it++)->first);
  if (!profile_ || op_seconds_.empty()) return;
  double total = 0;
  for (const auto& [op, t] : op_seconds_) total += t.first;
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [op, t] : op_seconds_) rows.emplace_back(t.first, op);
  std::sort(rows.rbegin(), rows.rend());
  fmt::print(stderr, "gpuml profile: {} steps, {:.3f} s in kernels\n", plan_.steps.size(), total);
  for (const auto& [seconds, op] : rows)
    fmt::print(stderr, "  {:<24} {:8.3f} s {:5.1f}%  {} calls\n", op, seconds, 100 * seconds / total,
               op_seconds_[op].second);
}

size_t Executor::arena_bytes() const {
  size_t total = 0;
  for (const auto& a : arenas_) total += a->bytes();
  return total;
}

void Executor::drop_staged(int value, const void* host) {
  auto it = staged_.find(value);
  if (it == staged_.end()) return;
  std::vector<Staged>& copies = it->second;
  for (auto c = copies.begin(); c != copies.end();) {
    if (host != nullptr && c->host != host) {
      ++c;
      continue;
    }
    // Freeing is ordered on the backend's default stream: make that stream wait for the copy first.
    plan_.values[value].backend->wait_event(nullptr, *c->copied);
    c = copies.erase(c);
  }
  if (copies.empty()) staged_.erase(it);
}

std::optional<Tensor> Executor::take_staged(int value, const void* host) {
  auto it = staged_.find(value);
  if (it == staged_.end()) return std::nullopt;
  std::vector<Staged>& copies = it->second;
  for (size_t c = 0; c < copies.size(); ++c) {
    if (copies[c].host != host) continue;
    Tensor device = copies[c].device;
    // The steps run after this copy. Copies staged before it were for batches that were not run:
    // dropped, once their copies are done. Later ones stay (the trainer stages batch k + 1 before
    // it runs batch k).
    for (size_t d = 0; d <= c; ++d) plan_.values[value].backend->wait_event(nullptr, *copies[d].copied);
    copies.erase(copies.begin(), copies.begin() + static_cast<std::ptrdiff_t>(c) + 1);
    if (copies.empty()) staged_.erase(it);
    return device;
  }
  return std::nullopt;
}

size_t Executor::staged_count() const {
  size_t n = 0;
  for (const auto& [value, copies] : staged_) n += copies.size();
  return n;
}

void Executor::stage(const std::map<std::string, Tensor>& feeds) {
  for (size_t i = 0; i < plan_.values.size(); ++i) {
    const PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::External || v.backend->device().is_host()) continue;
    auto it = feeds.find(v.name);
    if (it == feeds.end()) continue;
    const Tensor& t = it->second;
    if (!t.defined() || !t.device().is_host() || !t.is_contiguous() || t.shape() != v.type.shape ||
        t.dtype() != v.type.dtype)
      continue;  // run() will say what is wrong, or copy it as usual
    drop_staged(static_cast<int>(i), t.raw_data());  // staged again: the newer copy wins
    Backend& backend = *v.backend;
    std::unique_ptr<Stream>& stream = copy_streams_[&backend];
    if (!stream) stream = backend.create_stream();
    Staged s{t.raw_data(), Tensor::empty(t.shape(), t.dtype(), backend), nullptr};
    // The memory was allocated in order on the default stream; the copy stream waits for that.
    backend.wait_event(stream.get(), *backend.record_event(nullptr));
    try {
      backend.copy_to_device(s.device.raw_data(), t.raw_data(), t.nbytes(), stream.get());
    } catch (...) {
      // Chunks may already be queued on the copy stream, and s.device is freed in order on the
      // default stream: that stream waits for the copy stream first. If even that fails, the
      // buffer is leaked rather than handed back while a copy may still write into it.
      try {
        backend.wait_event(nullptr, *backend.record_event(stream.get()));
      } catch (...) {
        new Tensor(std::move(s.device));
      }
      throw;
    }
    s.copied = backend.record_event(stream.get());
    std::vector<Staged>& copies = staged_[static_cast<int>(i)];
    copies.push_back(std::move(s));
    if (copies.size() > kMaxStaged) drop_staged(static_cast<int>(i), copies.front().host);
  }
}

const Tensor& Executor::checked_feed(const std::map<std::string, Tensor>& feeds, size_t i) const {
  const PlanValue& v = plan_.values[i];
  auto it = feeds.find(v.name);
  GPUML_CHECK(it != feeds.end(), "executor: missing feed for '{}' (expected {} {})", v.name,
              shape_str(v.type.shape), v.type.dtype);
  const Tensor& t = it->second;
  GPUML_CHECK(t.defined(), "executor: feed '{}' is an undefined tensor", v.name);
  GPUML_CHECK_SHAPE(t.shape() == v.type.shape, "executor: feed '{}' has shape {}, the graph expects {}", v.name,
                    shape_str(t.shape()), shape_str(v.type.shape));
  GPUML_CHECK_KIND(ErrorKind::DType, t.dtype() == v.type.dtype, "executor: feed '{}' is {}, the graph expects {}",
                   v.name, t.dtype(), v.type.dtype);
  return t;
}

// Feeds the plan does not use (pruned inputs) are ignored: one feed dict serves several plans.
void Executor::bind_feeds(const std::map<std::string, Tensor>& feeds) {
  for (size_t i = 0; i < plan_.values.size(); ++i) {
    const PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::External) continue;
    const Tensor& t = checked_feed(feeds, i);
    if (std::optional<Tensor> staged = take_staged(static_cast<int>(i), t.raw_data())) {  // shapes were checked twice
      values_[i] = *staged;
      continue;
    }
    // The plan assumed contiguous feeds in the memory of their home backend.
    bool in_place = t.is_contiguous() && t.device() == v.backend->device();
    values_[i] = in_place ? t : to_backend(t, *v.backend);
  }
}

// Captured work reads fixed addresses. A contiguous feed already in device memory is used where
// it is (its address is part of the run's key); any other feed is copied into its slot, ordered
// on the default stream before the steps.
void Executor::bind_feeds_for_replay(const std::map<std::string, Tensor>& feeds, uint64_t rng_offset) {
  run_key_.clear();
  for (size_t i = 0; i < plan_.values.size(); ++i) {
    const PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::External) continue;
    const Tensor& t = checked_feed(feeds, i);
    Backend& home = *v.backend;
    std::optional<Tensor> staged = take_staged(static_cast<int>(i), t.raw_data());
    if (!staged && !t.device().is_host() && t.is_contiguous() && t.device() == home.device()) {
      values_[i] = t;
      run_key_.push_back(t.raw_data());
      continue;
    }
    run_key_.push_back(nullptr);  // in its slot (one entry per feed: the key is positional)
    Tensor& slot = feed_slots_[static_cast<int>(i)];
    if (!slot.defined()) slot = Tensor::empty(v.type.shape, v.type.dtype, home);
    if (staged) {
      home.copy_within(slot.raw_data(), staged->raw_data(), slot.nbytes());  // then freed in stream order
    } else if (t.device().is_host() && t.is_contiguous()) {
      home.copy_to_device(slot.raw_data(), t.raw_data(), t.nbytes());
    } else {
      Tensor dense = to_backend(t, home);
      home.copy_within(slot.raw_data(), dense.raw_data(), dense.nbytes());
    }
    values_[i] = slot;
  }
  if (!rng_slot_.defined()) rng_slot_ = Tensor::empty({1}, DType::i64, *capture_backend_);
  capture_backend_->copy_to_device(rng_slot_.raw_data(), &rng_offset, sizeof(rng_offset));
}

void Executor::run_step(const PlanStep& step, uint64_t rng_offset, bool replay_mode) {
  std::vector<Tensor> inputs;
  for (int in : step.inputs) inputs.push_back(values_[in]);
  switch (step.kind) {
    case StepKind::Kernel: {
      const bool random = draws_philox(step.op);  // the Random ops, attention's dropout
      // Captured work reads the offset from its slot when it runs; eager work gets it in attrs.
      const bool shift = random && !replay_mode && rng_offset != 0;
      Attrs shifted;
      if (shift) {
        shifted = step.attrs;
        shifted.offset += rng_offset;
      }
      KernelCall call{*step.backend, inputs, values_[step.output], shift ? shifted : step.attrs, nullptr};
      if (random && replay_mode) call.offset_slot = rng_slot_.raw_data();
      call.collectives = collectives_;
      // A step's outputs are consecutive plan values (planner.h), so its further outputs are the
      // tensors after output 0 in values_.
      call.extra_outputs = std::span<const Tensor>(values_).subspan(static_cast<size_t>(step.output) + 1,
                                                                  static_cast<size_t>(step.output_count) - 1);
      step.backend->run(step.op, call);
      return;
    }
    case StepKind::View: values_[step.output] = apply_view(inputs[0], step.op, step.attrs); return;
    case StepKind::Transfer: {
      const PlanValue& out = plan_.values[step.output];
      if (out.home == ValueHome::Alias) {  // same device: re-homed without a copy
        values_[step.output] = inputs[0];
        return;
      }
      const Tensor& src = inputs[0];
      const Tensor& dst = values_[step.output];
      // Ordering across backends: the source's work must be done before the copy reads it.
      step.source->synchronize();
      if (dst.device().is_host()) {
        step.source->copy_to_host(dst.raw_data(), src.raw_data(), src.nbytes());
        step.source->synchronize();
      } else if (src.device().is_host()) {
        step.backend->copy_to_device(dst.raw_data(), src.raw_data(), src.nbytes());
      } else {  // device to another device: stage through the host
        Tensor staging = Tensor::empty(src.shape(), src.dtype());
        step.source->copy_to_host(staging.raw_data(), src.raw_data(), src.nbytes());
        step.source->synchronize();
        step.backend->copy_to_device(dst.raw_data(), staging.raw_data(), staging.nbytes());
        step.backend->synchronize();
      }
      return;
    }
  }
}

namespace {

// A fresh contiguous host tensor: outputs must not alias the arena, which the next run reuses.
// Device values are read back through the backend that owns them (it need not be registered).
Tensor copy_out(const Tensor& t, Backend& owner) {
  if (t.device().is_host()) return to_backend(t, backend_registry().reference());
  Tensor src = t.is_contiguous() ? t : run_op(owner, OpId::copy, {t});
  Tensor out = Tensor::empty(src.shape(), src.dtype());
  owner.copy_to_host(out.raw_data(), src.raw_data(), src.nbytes());
  owner.synchronize();
  return out;
}

}  // namespace

std::map<int, Tensor> Executor::bind_output_buffers(const RunOptions& options,
                                                    const std::map<std::string, Tensor>& feeds) {
  std::map<int, Tensor> copy_in;
  for (const auto& [index, buffer] : options.output_buffers) {
    GPUML_CHECK(index >= 0 && index < static_cast<int>(plan_.outputs.size()),
                "executor: output buffer for output {}, but the plan has {} outputs", index, plan_.outputs.size());
    int v = plan_.outputs[index];
    const PlanValue& pv = plan_.values[v];
    GPUML_CHECK_SHAPE(buffer.shape() == pv.type.shape && buffer.dtype() == pv.type.dtype,
                      "executor: buffer for output {} is {} {}, the output is {} {}", index,
                      shape_str(buffer.shape()), buffer.dtype(), shape_str(pv.type.shape), pv.type.dtype);
    GPUML_CHECK(buffer.is_contiguous() && buffer.device() == pv.backend->device(),
                "executor: buffer for output {} must be contiguous on {}", index, pv.backend->device().str());
    for (const auto& [name, feed] : feeds)
      GPUML_CHECK(feed.storage() != buffer.storage(), "executor: buffer for output {} shares memory with feed '{}'",
                  index, name);
    // Only a kernel that writes an arena value can write the buffer directly; consumers of the
    // value then read the buffer, which holds the same numbers.
    bool direct = pv.home == ValueHome::Arena && producer_[v] >= 0 &&
                  plan_.steps[producer_[v]].kind == StepKind::Kernel;
    if (direct) values_[v] = buffer;
    else copy_in[index] = buffer;
  }
  return copy_in;
}

void Executor::index_ready_outputs(const RunOptions& options) {
  ready_after_step_.clear();
  on_output_ready_ = nullptr;
  if (options.ready_outputs.empty()) return;
  GPUML_CHECK(options.on_output_ready != nullptr, "executor: ready_outputs given without on_output_ready");
  for (int index : options.ready_outputs) {
    GPUML_CHECK(index >= 0 && index < static_cast<int>(plan_.outputs.size()),
                "executor: ready output {}, but the plan has {} outputs", index, plan_.outputs.size());
    ready_after_step_[producer_[plan_.outputs[index]]].push_back(index);  // -1: fed, or made by no step
  }
  on_output_ready_ = &options.on_output_ready;
}

void Executor::call_ready_outputs(int step) {
  if (on_output_ready_ == nullptr) return;
  auto it = ready_after_step_.find(step);
  if (it == ready_after_step_.end()) return;
  for (int index : it->second) (*on_output_ready_)(index, values_[plan_.outputs[index]]);
}

void Executor::run_steps(uint64_t rng_offset, std::set<Backend*>& used, bool replay_mode) {
  // A replayed run's kernels run later, at once: its ready outputs are announced after it.
  if (!replay_mode) call_ready_outputs(-1);
  for (size_t s = 0; s < plan_.steps.size(); ++s) {
    const PlanStep& step = plan_.steps[s];
    used.insert(step.backend);
    if (profile_) {
      auto t0 = std::chrono::steady_clock::now();
      run_step(step, rng_offset, replay_mode);
      step.backend->synchronize();
      std::string key = step.kind == StepKind::Kernel ? std::string(op_name(step.op))
                        : step.kind == StepKind::View   ? "(view)"
                                                        : "(transfer)";
      if (profile_shapes_)  // GPUML_PROFILE=shapes: one row per op and input types
        for (int v : step.inputs)
          key += fmt::format(" {}{}", plan_.values[v].type.dtype, shape_str(plan_.values[v].type.shape));
      auto& slot = op_seconds_[key];
      slot.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++slot.second;
    } else {
      run_step(step, rng_offset, replay_mode);
    }
    if (!replay_mode) call_ready_outputs(static_cast<int>(s));
  }
}

void Executor::run_replayed(std::set<Backend*>& used) {
  Backend& backend = *capture_backend_;
  used.insert(&backend);
  auto found = captures_.find(run_key_);
  if (found != captures_.end()) {
    for (const PlanStep& step : plan_.steps)  // views and aliases: bindings on the host
      if (step.kind != StepKind::Kernel) run_step(step, 0, true);
    found->second->replay();
    ++replay_stats_.replays;
    return;
  }
  if (!warmed_up_ || captures_.size() >= kMaxCaptures) {
    warmed_up_ = true;
    ++replay_stats_.eager;
    run_steps(0, used, true);
    return;
  }
  std::unique_ptr<CapturedWork> work;
  try {
    backend.begin_capture();
    run_steps(0, used, true);
    work = backend.end_capture();
    work->replay();  // the first launch reserves the graph's memory: it may fail too
  } catch (const std::exception& e) {
    backend.abort_capture();  // nothing ran: redo the run eagerly, and all later ones
    work.reset();
    captures_.clear();  // never replayed again: give their memory back
    capture_backend_ = nullptr;
    const auto* error = dynamic_cast<const Error*>(&e);
    replay_note_ = fmt::format("capture failed: {}", error ? error->message() : std::string(e.what()));
    fmt::print(stderr, "gpuml: note: this plan runs eagerly, without replay: {}\n", replay_note_);
    ++replay_stats_.eager;
    run_steps(0, used, true);
    return;
  }
  ++replay_stats_.captures;
  ++replay_stats_.replays;
  captures_.emplace(run_key_, std::move(work));
}

std::vector<Tensor> Executor::run(const std::map<std::string, Tensor>& feeds, const RunOptions& options) {
  // Read by collective kernels during this run. (Those run on a host backend: a plan with one
  // never captures, so replayed work needs none.)
  collectives_ = options.collectives.communicator != nullptr ? &options.collectives : nullptr;
  const bool replay = options.replay && capture_backend_ != nullptr;
  if (options.replay && !replay) ++replay_stats_.eager;
  if (replay) bind_feeds_for_replay(feeds, options.rng_offset);
  else bind_feeds(feeds);
  std::map<int, Tensor> copy_in = bind_output_buffers(options, feeds);
  if (replay)  // the buffers the kernels write directly (the rest are copied into afterwards)
    for (const auto& [index, buffer] : options.output_buffers)
      run_key_.push_back(copy_in.count(index) ? nullptr : buffer.raw_data());
  index_ready_outputs(options);
  std::set<Backend*> used;
  try {
    if (replay) run_replayed(used);
    else run_steps(options.rng_offset, used);
    for (Backend* b : used) b->synchronize();
    for (Backend* b : used) b->check_deferred_errors();
    if (replay)
      for (const auto& [step, indices] : ready_after_step_) call_ready_outputs(step);
    on_output_ready_ = nullptr;
  } catch (...) {
    on_output_ready_ = nullptr;
    // Errors that kernels deferred belong to this failed run: drop the rest, so that the next
    // run does not report them. Unbind donated buffers: a later run must not write into them.
    for (Backend* b : used) {
      try {
        b->synchronize();
        b->check_deferred_errors();
      } catch (...) {
      }
    }
    values_ = arena_values_;
    throw;
  }
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < plan_.outputs.size(); ++i) {
    int v = plan_.outputs[i];
    Backend& owner = *plan_.values[v].backend;
    if (options.ready_outputs.count(static_cast<int>(i))) {  // handed to on_output_ready instead
      outputs.emplace_back();
      continue;
    }
    auto donated = options.output_buffers.find(static_cast<int>(i));
    if (donated == options.output_buffers.end()) {
      outputs.push_back(copy_out(values_[v], owner));
      continue;
    }
    if (copy_in.count(static_cast<int>(i))) {
      Tensor src = contiguous(values_[v], owner);
      owner.copy_within(donated->second.raw_data(), src.raw_data(), src.nbytes());
      owner.synchronize();
    }
    outputs.push_back(donated->second);
  }
  values_ = arena_values_;
  return outputs;
}

}  // namespace gpuml
