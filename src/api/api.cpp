// The public API (include/gpuml/gpuml.h) over the engine: Array wraps a host Tensor, Model an
// nn::Model, Trainer a train/trainer.h Trainer, Predictor a loaded checkpoint and its runner.
// Every entry point turns the engine's errors into gpuml::api::Error with the same message.
#include "gpuml/gpuml.h"

#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>

#include "backend/info.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "nn/summary.h"
#include "train/callbacks.h"
#include "train/inference.h"
#include "train/model_runner.h"
#include "train/trainer.h"
#include "train/training_data.h"

namespace gpuml::api {

struct Array::Impl {
  Tensor tensor;  // host, contiguous
  std::vector<int64_t> shape;
};

struct Model::Impl {
  nn::Model model;
};

namespace {

Error::Kind kind_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::OutOfMemory: return Error::Kind::out_of_memory;
    case ErrorKind::Io: return Error::Kind::io;
    case ErrorKind::Unsupported: return Error::Kind::unsupported;
    case ErrorKind::Internal: return Error::Kind::internal;
    default: return Error::Kind::invalid;  // Invalid, Shape, DType: the caller's input
  }
}

template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const gpuml::Error& e) {
    throw api::Error(e.what(), kind_of(e.kind()));
  } catch (const nlohmann::json::exception& e) {
    throw api::Error(std::string("JSON: ") + e.what());
  }
}

gpuml::DType engine_dtype(DType d) {
  switch (d) {
    case DType::f64: return gpuml::DType::f64;
    case DType::i32: return gpuml::DType::i32;
    case DType::i64: return gpuml::DType::i64;
    case DType::u8: return gpuml::DType::u8;
    default: return gpuml::DType::f32;
  }
}

Array wrap(Tensor t) {
  auto impl = std::make_shared<Array::Impl>();
  impl->shape.assign(t.shape().begin(), t.shape().end());
  impl->tensor = std::move(t);
  return Array(std::move(impl));
}

template <typename T>
Array copy_elements(const T* data, const std::vector<int64_t>& shape, gpuml::DType dtype) {
  return guarded([&] {
    Tensor t = Tensor::empty(Shape(shape.begin(), shape.end()), dtype);
    if (t.nbytes()) {
      GPUML_CHECK(data != nullptr, "Array::copy_of: null data for shape {}", shape_str(t.shape()));
      std::memcpy(t.raw_data(), data, t.nbytes());
    }
    return wrap(std::move(t));
  });
}

const Tensor& tensor_of(const Array& a, const char* what) {
  GPUML_CHECK(a.impl().tensor.defined(), "{}: an empty Array", what);
  return a.impl().tensor;
}

// The elements of a host array of one of the public dtypes, as D.
template <typename D>
void convert(const Tensor& t, D* out) {
  auto copy = [&](const auto* src) {
    for (int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<D>(src[i]);
  };
  switch (t.dtype()) {
    case gpuml::DType::f32: return copy(static_cast<const float*>(t.raw_data()));
    case gpuml::DType::f64: return copy(static_cast<const double*>(t.raw_data()));
    case gpuml::DType::i32: return copy(static_cast<const int32_t*>(t.raw_data()));
    case gpuml::DType::i64: return copy(static_cast<const int64_t*>(t.raw_data()));
    case gpuml::DType::u8: return copy(static_cast<const uint8_t*>(t.raw_data()));
    default: GPUML_FAIL(ErrorKind::DType, "an array of dtype {} has no public form", t.dtype());
  }
}

Tensor converted(const Tensor& t, gpuml::DType to) {
  Tensor out = Tensor::empty(t.shape(), to);
  if (to == gpuml::DType::f32) convert(t, out.data<float>());
  else convert(t, out.data<int64_t>());
  return out;
}

data::InMemoryDataset dataset_of(const Array& x, const Array& y) {
  return data::InMemoryDataset(tensor_of(x, "features"), tensor_of(y, "labels"));
}

TrainConfig config_of(const Settings& s) {
  TrainConfig c;
  c.model = s.model;
  c.data = s.data;
  c.epochs = s.epochs;
  c.batch_size = s.batch_size;
  c.optimizer.kind = s.optimizer;
  c.optimizer.lr = s.lr;
  if (s.weight_decay >= 0) c.optimizer.weight_decay = s.weight_decay;
  c.optimizer.weight_decay_params = s.weight_decay_params;
  c.seed = s.seed;
  c.threads = s.threads;
  c.device = s.device;
  c.precision = parse_precision(s.precision);
  c.val_split = s.val_split;
  c.deterministic = s.deterministic;
  c.task = s.task;
  c.ignore_index = s.ignore_index;
  c.out = s.out;
  c.save_on_interrupt = s.handle_signals;
  c.quiet = !s.print_progress;
  return c;
}


// The API's step and epoch functions, and its stop request. Added before the command line's
// callbacks, so that a stop asked for in a step's function is seen by the checkpoint of that step.
class ApiHooks : public Callback {
 public:
  std::vector<std::function<void(const StepReport&)>> step_functions;
  std::vector<std::function<void(const EpochReport&)>> epoch_functions;
  std::atomic<bool> stop{false};

  void on_train_begin(TrainState&) override { stop.store(false); }
  void on_step_end(TrainState& st) override {
    if (!step_functions.empty()) {
      StepReport r{st.epoch + 1,        st.progress.step, st.batch_index + 1, st.steps_per_epoch,
                   st.batch_rows,       st.step_loss,     st.lr};
      for (auto& f : step_functions) f(r);
    }
    if (stop.load()) st.stop_requested = true;
  }
  void on_epoch_end(TrainState& st) override {
    const EpochSummary& e = st.epoch_summary;
    for (auto& f : epoch_functions)
      f({e.epoch, e.train_loss, e.train_metric, e.eval_loss, e.eval_metric, e.seconds});
    if (stop.load()) st.stop_requested = true;
  }
};

}  // namespace

Array::Array() : impl_(std::make_shared<Impl>()) {}
Array::Array(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Array Array::copy_of(const float* d, const std::vector<int64_t>& s) { return copy_elements(d, s, gpuml::DType::f32); }
Array Array::copy_of(const double* d, const std::vector<int64_t>& s) { return copy_elements(d, s, gpuml::DType::f64); }
Array Array::copy_of(const int32_t* d, const std::vector<int64_t>& s) { return copy_elements(d, s, gpuml::DType::i32); }
Array Array::copy_of(const int64_t* d, const std::vector<int64_t>& s) { return copy_elements(d, s, gpuml::DType::i64); }
Array Array::copy_of(const uint8_t* d, const std::vector<int64_t>& s) { return copy_elements(d, s, gpuml::DType::u8); }
Array Array::view_of(const void* data, DType dtype, const std::vector<int64_t>& shape,
                     std::shared_ptr<const void> owner) {
  return guarded([&] {
    const gpuml::DType d = engine_dtype(dtype);
    Shape s(shape.begin(), shape.end());
    for (int64_t n : shape) GPUML_CHECK_SHAPE(n >= 0, "Array::view_of: a negative dimension in {}", shape_str(s));
    const size_t bytes = static_cast<size_t>(numel(s)) * dtype_size(d);
    GPUML_CHECK(bytes == 0 || data != nullptr, "Array::view_of: null data for shape {}", shape_str(s));
    // The engine never writes through a dataset's features or a model's inputs.
    auto storage = Storage::borrow(const_cast<void*>(data), bytes, Device{},
                                   std::const_pointer_cast<void>(std::move(owner)));
    return wrap(Tensor(std::move(storage), s, contiguous_strides(s), 0, d));
  });
}
const std::vector<int64_t>& Array::shape() const { return impl_->shape; }
const void* Array::data() const { return impl_->tensor.defined() && impl_->tensor.numel() ? impl_->tensor.raw_data() : nullptr; }
int64_t Array::size() const { return impl_->tensor.defined() ? impl_->tensor.numel() : 0; }

DType Array::dtype() const {
  switch (impl_->tensor.dtype()) {
    case gpuml::DType::f64: return DType::f64;
    case gpuml::DType::i32: return DType::i32;
    case gpuml::DType::i64: return DType::i64;
    case gpuml::DType::u8: return DType::u8;
    default: return DType::f32;
  }
}

std::vector<float> Array::to_float() const {
  return guarded([&] {
    Tensor f = converted(tensor_of(*this, "to_float"), gpuml::DType::f32);
    return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
  });
}

std::vector<int64_t> Array::to_int64() const {
  return guarded([&] {
    Tensor f = converted(tensor_of(*this, "to_int64"), gpuml::DType::i64);
    return std::vector<int64_t>(f.data<int64_t>(), f.data<int64_t>() + f.numel());
  });
}

Model::Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Model Model::preset(const std::string& name) {
  return guarded([&] { return Model(std::make_shared<Impl>(Impl{nn::Model::preset(name)})); });
}
Model Model::from_json(const std::string& json) {
  return guarded([&] { return Model(std::make_shared<Impl>(Impl{nn::Model::from_json(nlohmann::json::parse(json))})); });
}
Model Model::from_file(const std::string& path) {
  return guarded([&] { return Model(std::make_shared<Impl>(Impl{load_trained_model(path).model})); });
}
std::string Model::to_json() const { return impl_->model.to_json().dump(2); }
std::vector<int64_t> Model::input_shape() const {
  const Shape& s = impl_->model.input_shape();
  return {s.begin(), s.end()};
}
int64_t Model::num_classes() const { return impl_->model.num_classes(); }
std::string Model::summary(int64_t batch_size) const {
  return guarded([&] { return nn::model_summary(impl_->model, batch_size); });
}
int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : impl_->model.param_infos()) n += numel(p.shape);
  return n;
}

struct Trainer::Impl {
  std::shared_ptr<ApiHooks> hooks = std::make_shared<ApiHooks>();
  std::unique_ptr<gpuml::Trainer> trainer;
};

namespace {

std::unique_ptr<gpuml::Trainer> make_trainer(const Settings& s, TrainerInputs inputs, std::shared_ptr<ApiHooks> hooks) {
  auto t = std::make_unique<gpuml::Trainer>(config_of(s), std::move(inputs));
  t->add_callback(std::move(hooks));
  // A run directory gets what `gpuml train` writes; the library prints nothing otherwise.
  if (!s.out.empty()) {
    CommandLineOutput output{nullptr, stderr};
    if (!s.print_progress) output.progress = nullptr;
    add_command_line_callbacks(*t, output);
  }
  return t;
}

}  // namespace

Trainer::Trainer(const Settings& s) : impl_(std::make_unique<Impl>()) {
  impl_->trainer = guarded([&] { return make_trainer(s, {}, impl_->hooks); });
}

Trainer::Trainer(const Settings& s, const Model& model, const Array& x, const Array& y, const Array& eval_x,
                 const Array& eval_y)
    : impl_(std::make_unique<Impl>()) {
  impl_->trainer = guarded([&] {
    TrainerInputs in;
    in.model = nn::Model::from_json(model.impl().model.to_json());  // a Model may serve many trainers
    in.train = dataset_of(x, y);
    const bool has_eval = eval_x.size() > 0 || eval_y.size() > 0;
    if (has_eval) in.eval = dataset_of(eval_x, eval_y);
    Settings arrays = s;
    arrays.data.clear();  // the run's data are the arrays: a checkpoint names no dataset file
    return make_trainer(arrays, std::move(in), impl_->hooks);
  });
}

Trainer::~Trainer() = default;
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;

void Trainer::on_epoch_end(std::function<void(const EpochReport&)> callback) {
  impl_->hooks->epoch_functions.push_back(std::move(callback));
}

void Trainer::on_step_end(std::function<void(const StepReport&)> callback) {
  impl_->hooks->step_functions.push_back(std::move(callback));
}

void Trainer::request_stop() {
  impl_->hooks->stop.store(true);
  impl_->trainer->request_stop();
}

FitReport Trainer::fit() {
  return guarded([&] {
    TrainResult r = impl_->trainer->fit();
    return FitReport{r.epochs_run,   r.task,          r.metric_name,
                     r.train_loss,   r.train_metric,  r.eval_loss,
                     r.eval_metric,  r.best_metric,   r.seconds_training,
                     impl_->trainer->device_used(),   r.stop_requested || r.interrupted_by != 0,
                     r.run_dir};
  });
}

std::string Trainer::task() const { return impl_->trainer->task().name(); }
std::string Trainer::metric_name() const { return impl_->trainer->task().metric_name(); }

Evaluation Trainer::evaluate(const Array& x, const Array& y) {
  return guarded([&] {
    const Task& task = impl_->trainer->task();
    TaskSums e = impl_->trainer->evaluate(dataset_of(x, y));
    return Evaluation{e.rows, task.mean_loss(e), task.metric(e), task.metric_name()};
  });
}

Array Trainer::predict(const Array& x) {
  return guarded([&] { return wrap(impl_->trainer->predict(tensor_of(x, "predict"))); });
}

void Trainer::save(const std::string& path) const {
  guarded([&] { save_checkpoint(path, impl_->trainer->checkpoint()); });
}

struct Predictor::Impl {
  LoadedModel loaded;
  std::unique_ptr<ModelRunner> runner;
};

Predictor::Predictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

Predictor Predictor::load(const std::string& path, const std::string& device) {
  return guarded([&] {
    auto impl = std::make_unique<Impl>(Impl{load_trained_model(path), nullptr});
    impl->runner = make_inference_runner(impl->loaded, device);
    return Predictor(std::move(impl));
  });
}

Array Predictor::predict(const Array& x) {
  return guarded([&] {
    const Tensor& given = tensor_of(x, "predict");
    const Shape& want = impl_->loaded.model.input_shape();
    GPUML_CHECK_SHAPE(given.ndim() == static_cast<int>(want.size()) + 1 &&
                          Shape(given.shape().begin() + 1, given.shape().end()) == want,
                      "predict: the model takes samples of shape {}, got an array of shape {}", shape_str(want),
                      shape_str(given.shape()));
    // Scaled by the one input rule (train/task.h), as the Trainer and `gpuml predict` scale it.
    return wrap(impl_->runner->predict(model_inputs(given, impl_->loaded.task)));
  });
}

Model Predictor::model() const {
  return Model(std::make_shared<Model::Impl>(Model::Impl{nn::Model::from_json(impl_->loaded.model.to_json())}));
}

std::string version() { return GPUML_VERSION; }

std::string info() {
  return guarded([] { return render_system_report(collect_system_report()); });
}

}  // namespace gpuml::api
