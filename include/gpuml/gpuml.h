// gpuml's public C++ API: train, evaluate and run neural networks on arrays in your memory or on
// datasets on disk, on a GPU (CUDA) or the CPU. Only standard C++ types cross this header; the
// engine behind it (src/) is not part of the API and may change.
//
//   #include <gpuml/gpuml.h>
//   namespace ga = gpuml::api;
//   ga::Array x = ga::Array::copy_of(features.data(), {n, 20});   // float features (N, 20)
//   ga::Array y = ga::Array::copy_of(labels.data(), {n});         // int64 class ids (N,)
//   ga::Settings s;  s.epochs = 10;  s.lr = 0.01;
//   ga::Trainer trainer(s, ga::Model::from_json(json), x, y);
//   ga::FitReport r = trainer.fit();                              // r.train_metric (accuracy)
//   trainer.save("mlp.safetensors");                              // gpuml predict reads it too
//   ga::Array p = ga::Predictor::load("mlp.safetensors").predict(x);   // (N, C) probabilities
//
// Build with CMake: find_package(gpuml REQUIRED) and target_link_libraries(app PRIVATE
// gpuml::gpuml). Errors are gpuml::api::Error, with gpuml's message (the file, flag or shape).
// Objects are safe to use from one thread at a time each; two Trainers may run on two threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace gpuml::api {

class Error : public std::runtime_error {
 public:
  // What went wrong, for hosts that map errors to their own types (Python: ValueError, MemoryError,
  // OSError): bad input (a value, shape or dtype), memory, a file, a feature this build lacks, a bug.
  enum class Kind { invalid, out_of_memory, io, unsupported, internal };
  explicit Error(const std::string& message, Kind kind = Kind::invalid) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

enum class DType { f32, f64, i32, i64, u8 };

// An array in host memory: a shape, a dtype and its elements. Copies share the elements.
class Array {
 public:
  Array();
  // A copy of the product(shape) elements at `data`.
  static Array copy_of(const float* data, const std::vector<int64_t>& shape);
  static Array copy_of(const double* data, const std::vector<int64_t>& shape);
  static Array copy_of(const int32_t* data, const std::vector<int64_t>& shape);
  static Array copy_of(const int64_t* data, const std::vector<int64_t>& shape);
  static Array copy_of(const uint8_t* data, const std::vector<int64_t>& shape);
  // A view of the product(shape) contiguous elements at `data`, without a copy: for arrays that
  // another runtime owns (a NumPy array, a tensor). `owner` is held as long as any Array (or a
  // Trainer given it) uses the elements, and released on whatever thread drops the last one;
  // the elements must not change meanwhile.
  static Array view_of(const void* data, DType dtype, const std::vector<int64_t>& shape,
                       std::shared_ptr<const void> owner);

  const std::vector<int64_t>& shape() const;
  DType dtype() const;
  int64_t size() const;  // elements
  // The contiguous elements (row-major, of dtype()); nullptr for an empty Array. They live as
  // long as this Array or a copy of it.
  const void* data() const;
  // The elements, converted.
  std::vector<float> to_float() const;
  std::vector<int64_t> to_int64() const;

  struct Impl;
  explicit Array(std::shared_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

// A network: a preset, or a description in gpuml's JSON model format (README, "Models").
class Model {
 public:
  static Model preset(const std::string& name);     // "mlp", "cnn" (Fashion-MNIST sized)
  static Model from_json(const std::string& json);
  static Model from_file(const std::string& path);  // a .json description or an .onnx model
  std::string to_json() const;
  std::vector<int64_t> input_shape() const;  // per sample
  int64_t num_classes() const;
  int64_t num_parameters() const;
  // A table of the layers, output shapes (for `batch_size` samples) and parameter counts.
  std::string summary(int64_t batch_size = 1) const;

  struct Impl;
  explicit Model(std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

// What `gpuml train`'s flags set (README, "gpuml train flags"), with the same defaults.
struct Settings {
  std::string model = "cnn";  // with Trainer(settings): a preset, .json or .onnx file
  std::string data = "/usr/share/datasets/fashion-mnist";  // with Trainer(settings): the dataset
  int64_t epochs = 5;
  int64_t batch_size = 128;
  std::string optimizer = "adam";  // sgd, adam, adamw
  double lr = 1e-3;
  // Negative: the optimizer's default (0 for sgd and adam, 0.01 for adamw).
  double weight_decay = -1;
  // Which parameters weight_decay applies to: "all", or "matrices": those of 2 or more dims
  // (Linear and Embedding weights, conv kernels), not biases or norm scales (nanoGPT's AdamW).
  std::string weight_decay_params = "all";
  uint64_t seed = 0;
  int threads = 0;                 // 0: all cores
  std::string device = "auto";     // auto, cpu, ref, cuda[:N]
  std::string precision = "fp32";  // fp32, tf32, bf16
  // Hold out this fraction of the training rows for evaluation. Negative (the default): 10%
  // when the Trainer is given no test arrays; 0: none, and then the eval figures are NaN.
  double val_split = -1;
  bool deterministic = false;
  // What the model learns: "auto" (from the labels and the model), "classification" (accuracy),
  // "regression" (mean squared error; RMSE), "language-model" (per-token cross-entropy skipping
  // ignore_index; perplexity). README, "Tasks".
  std::string task = "auto";
  int64_t ignore_index = -100;
  // A run directory: when set, fit() writes what `gpuml train` writes there (metrics.csv,
  // TensorBoard, checkpoints), and progress goes to stderr. Empty: nothing is written.
  std::string out;
  // With `out`: print the run's header and progress bars to stderr, as `gpuml train` does
  // (false: only the files).
  bool print_progress = true;
  // With `out`: catch SIGINT/SIGTERM for fit()'s length, finishing the current step and writing a
  // checkpoint, as `gpuml train` does. Hosts with signal handling of their own (Python) turn it
  // off and stop through Trainer::request_stop instead.
  bool handle_signals = true;
};

// The metric is the task's: accuracy (classification), RMSE (regression), perplexity (language
// model); metric_name says which.
struct EpochReport {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_metric = 0;
  double eval_loss = 0, eval_metric = 0;  // NaN when there is no evaluation set (val_split 0)
  double seconds = 0;
};

// One optimizer step (Trainer::on_step_end).
struct StepReport {
  int64_t epoch = 0;            // 1-based
  int64_t step = 0;             // optimizer steps since the run began, this one included
  int64_t batch = 0;            // 1-based within the epoch
  int64_t batches_per_epoch = 0;
  int64_t rows = 0;             // in this batch
  double loss = 0;              // this batch's
  double lr = 0;
};

struct FitReport {
  int64_t epochs = 0;
  std::string task, metric_name;  // "classification", "accuracy"
  double train_loss = 0, train_metric = 0, eval_loss = 0, eval_metric = 0, best_metric = 0;
  double seconds = 0;  // training loops only
  std::string device;  // "cpu", "cuda:0"
  bool stopped = false;  // Trainer::request_stop ended it before its epochs were done
  std::string run_dir;   // where Settings::out's files went (empty without `out`)
};

struct Evaluation {
  int64_t count = 0;  // rows
  double loss = 0, metric = 0;
  std::string metric_name;
};

class Trainer {
 public:
  // Model and data from the files `settings` names, as `gpuml train` does.
  explicit Trainer(const Settings& settings);
  // Input scaling, one rule wherever features meet a model (fit, its evaluation arrays, evaluate,
  // predict, Predictor::predict, the CLI): uint8 features are images, scaled by 1/255 to [0, 1];
  // float and int32/int64 features are used as given; a language model's token ids are never
  // scaled. It is keyed on each array's own dtype, so uint8 images and the same images as floats
  // in [0, 1] give the same results, whichever dtype the model was trained on.
  // `model` on arrays: x (N, ...) features (float, or uint8 images scaled to [0, 1]), y the
  // targets: (N,) class ids, (N, K...) float values, or (N, T) token ids (Settings::task);
  // eval_x/eval_y (optional, both or neither) are evaluated after each epoch.
  Trainer(const Settings& settings, const Model& model, const Array& x, const Array& y, const Array& eval_x = {},
          const Array& eval_y = {});
  ~Trainer();
  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;

  // Called after each epoch, on the thread that called fit().
  void on_epoch_end(std::function<void(const EpochReport&)> callback);
  // Called after each optimizer step, on the thread that called fit(), before the step's
  // checkpoint is considered: a request_stop() from here stops after this step, and with
  // Settings::out a checkpoint records where (gpuml train --resume continues from it).
  void on_step_end(std::function<void(const StepReport&)> callback);
  // Asks fit() to stop after the current step (from a callback, or another thread). fit() returns
  // normally with FitReport::stopped set.
  void request_stop();
  FitReport fit();
  // The task the run trains and its metric, resolved from the settings, labels and model:
  // "classification" and "accuracy", "regression" and "rmse", "language-model" and "perplexity".
  std::string task() const;
  std::string metric_name() const;
  Evaluation evaluate(const Array& x, const Array& y);
  Array predict(const Array& x);  // (N, C) class probabilities; (N, K...) regression values
  // A checkpoint (.safetensors: weights, optimizer state, the model and settings) that
  // Predictor::load, `gpuml eval|predict|export` and `gpuml train --resume` read.
  void save(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A trained model for inference.
class Predictor {
 public:
  // A run directory (its best checkpoint), a checkpoint file, or an .onnx model.
  static Predictor load(const std::string& path, const std::string& device = "auto");
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  Array predict(const Array& x);  // (N, C) class probabilities; (N, K...) regression values
  Model model() const;

 private:
  struct Impl;
  explicit Predictor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

std::string version();
// What `gpuml info` prints: the build, the CPU and its features, backends and devices (whether
// the CUDA plugin loaded, and why not).
std::string info();

}  // namespace gpuml::api
