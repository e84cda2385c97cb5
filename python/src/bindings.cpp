// The `gpuml._gpuml` extension: the public C++ API (include/gpuml/gpuml.h) for Python. The
// Pythonic layer (python/gpuml/*.py) sits on it; this file only moves arrays and control across.
//
//   x = _gpuml.as_array(numpy_or_torch_or_dlpack)   # in place where the layout allows
//   t = _gpuml.Trainer(settings_dict, _gpuml.Model.preset("mlp"), x, y, None, None)
//   t.on_step_end(fn); t.fit()                       # the GIL is released between steps
//
// Arrays cross without NumPy's C API (the buffer protocol in, a buffer-exporting holder out, a
// DLPack capsule for tensors), so one build works with NumPy 1.x and 2.x. pybind11 (Debian's
// pybind11-dev) rather than nanobind: the main CMake build and CI build this module from the
// distribution's packages alone, as they build everything else (README, "Python").
#include <Python.h>
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gpuml/gpuml.h"

namespace py = pybind11;
namespace ga = gpuml::api;

namespace {

// ---- DLPack, as its ABI specifies it (dlpack.h v0.x, the unversioned capsule "dltensor") ----
struct DLDevice {
  int32_t device_type;  // 1: CPU
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // 0 int, 1 uint, 2 float, 4 bfloat, 6 bool
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;    // (ndim,)
  int64_t* strides;  // (ndim,) in elements, or null: compact row-major
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};
constexpr int32_t kDLCPU = 1, kDLCUDAHost = 3;

std::optional<ga::DType> dtype_of_format(const char* format, Py_ssize_t itemsize) {
  std::string f = format ? format : "B";
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f = f.substr(1);
  if (f.size() != 1) return std::nullopt;
  switch (f[0]) {
    case 'f':
      return itemsize == 4 ? std::optional(ga::DType::f32) : std::nullopt;
    case 'd':
      return itemsize == 8 ? std::optional(ga::DType::f64) : std::nullopt;
    case 'B':
      return itemsize == 1 ? std::optional(ga::DType::u8) : std::nullopt;
    case 'i':
    case 'l':
    case 'q':
      if (itemsize == 4) return ga::DType::i32;
      if (itemsize == 8) return ga::DType::i64;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::optional<ga::DType> dtype_of_dlpack(DLDataType t) {
  if (t.lanes != 1) return std::nullopt;
  if (t.code == 2 && t.bits == 32) return ga::DType::f32;
  if (t.code == 2 && t.bits == 64) return ga::DType::f64;
  if (t.code == 0 && t.bits == 32) return ga::DType::i32;
  if (t.code == 0 && t.bits == 64) return ga::DType::i64;
  if (t.code == 1 && t.bits == 8) return ga::DType::u8;
  return std::nullopt;
}

// A C-contiguous buffer of a supported dtype, viewed in place; nullopt when the layout or dtype
// does not allow it (the caller copies once).
std::optional<ga::Array> view_buffer(const py::handle& obj) {
  if (!PyObject_CheckBuffer(obj.ptr())) return std::nullopt;
  auto buffer = std::make_unique<Py_buffer>();
  if (PyObject_GetBuffer(obj.ptr(), buffer.get(), PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
    PyErr_Clear();  // not contiguous (a strided view): copied by the caller
    return std::nullopt;
  }
  std::optional<ga::DType> dtype = dtype_of_format(buffer->format, buffer->itemsize);
  if (!dtype) {
    PyBuffer_Release(buffer.get());
    return std::nullopt;
  }
  std::vector<int64_t> shape(buffer->shape, buffer->shape + buffer->ndim);
  const void* data = buffer->buf;
  std::shared_ptr<const void> owner(buffer.release(), [](const void* p) {
    py::gil_scoped_acquire gil;
    auto* b = static_cast<Py_buffer*>(const_cast<void*>(p));
    PyBuffer_Release(b);
    delete b;
  });
  return ga::Array::view_of(data, *dtype, shape, std::move(owner));
}

// A DLPack producer's tensor (PyTorch, JAX, CuPy...) on the CPU, compact and of a supported dtype,
// viewed in place; nullopt otherwise (the caller copies once through NumPy).
std::optional<ga::Array> view_dlpack(const py::handle& obj) {
  if (!py::hasattr(obj, "__dlpack__")) return std::nullopt;
  if (py::hasattr(obj, "__dlpack_device__")) {
    auto dev = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
    if (dev.first != kDLCPU && dev.first != kDLCUDAHost)
      throw py::value_error(
          "gpuml takes host arrays: this tensor is on a device (DLPack device type " +
          std::to_string(dev.first) + "); move it to the CPU first (tensor.cpu())");
  }
  py::object capsule = obj.attr("__dlpack__")();
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (!managed) throw py::error_already_set();
  // Ours now: the capsule must not free it as well.
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  std::shared_ptr<const void> owner(managed, [](const void* p) {
    py::gil_scoped_acquire gil;
    auto* m = static_cast<DLManagedTensor*>(const_cast<void*>(p));
    if (m->deleter) m->deleter(m);
  });
  const DLTensor& t = managed->dl_tensor;
  std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
  bool compact = true;
  if (t.strides) {
    int64_t expected = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && t.strides[i] != expected) compact = false;
      expected *= shape[i];
    }
  }
  std::optional<ga::DType> dtype = dtype_of_dlpack(t.dtype);
  if (!compact || !dtype) return std::nullopt;  // the owner releases the capsule's tensor
  const void* data = static_cast<const char*>(t.data) + t.byte_offset;
  return ga::Array::view_of(data, *dtype, shape, std::move(owner));
}

// Anything array-like as a gpuml Array: in place when it can be, else one copy through NumPy
// (np.ascontiguousarray, with float16/int16/bool/... as float32 or int64).
ga::Array as_array(const py::handle& obj) {
  if (obj.is_none()) return ga::Array();
  if (auto a = view_buffer(obj)) return *a;
  py::module_ np = py::module_::import("numpy");
  const bool ndarray =
      py::isinstance(obj, np.attr("ndarray"));  // its buffer said no: layout or dtype
  if (!ndarray)
    if (auto a = view_dlpack(obj)) return *a;
  py::object arr = py::hasattr(obj, "__dlpack__") && !ndarray ? np.attr("from_dlpack")(obj)
                                                              : np.attr("asarray")(obj);
  const std::string kind = py::str(arr.attr("dtype").attr("kind"));
  py::object want;
  if (kind == "f")
    want = np.attr("float32");
  else if (kind == "u" || kind == "i" || kind == "b")
    want = np.attr("int64");
  if (!want)
    throw py::value_error("gpuml takes numeric arrays (float, int, uint8), got dtype " +
                          std::string(py::str(arr.attr("dtype"))));
  // float64 and the integers keep their type when only the layout was the problem.
  py::object dtype = arr.attr("dtype");
  if (!dtype_of_format(std::string(py::str(dtype.attr("char"))).c_str(),
                       dtype.attr("itemsize").cast<Py_ssize_t>()))
    dtype = want;
  py::object copy = np.attr("ascontiguousarray")(arr, dtype);
  auto a = view_buffer(copy);
  if (!a) throw py::value_error("gpuml could not read this array");
  return *a;
}

// The elements of an Array as a buffer, so that numpy.asarray() shares them (and keeps this
// holder, and so the Array, alive as the NumPy array's base).
struct ArrayBuffer {
  ga::Array array;
};

const char* format_of(ga::DType d) {
  switch (d) {
    case ga::DType::f64:
      return "d";
    case ga::DType::i32:
      return "i";
    case ga::DType::i64:
      return "q";
    case ga::DType::u8:
      return "B";
    default:
      return "f";
  }
}

size_t itemsize_of(ga::DType d) {
  switch (d) {
    case ga::DType::f64:
    case ga::DType::i64:
      return 8;
    case ga::DType::u8:
      return 1;
    default:
      return 4;
  }
}

py::object to_numpy(const ga::Array& a) {
  py::object holder = py::cast(ArrayBuffer{a});
  return py::module_::import("numpy").attr("asarray")(holder);
}

ga::Settings settings_of(const py::dict& d) {
  ga::Settings s;
  for (auto [key, value] : d) {
    const std::string k = py::str(key);
    if (value.is_none()) continue;
    if (k == "model")
      s.model = value.cast<std::string>();
    else if (k == "data")
      s.data = value.cast<std::string>();
    else if (k == "epochs")
      s.epochs = value.cast<int64_t>();
    else if (k == "batch_size")
      s.batch_size = value.cast<int64_t>();
    else if (k == "optimizer")
      s.optimizer = value.cast<std::string>();
    else if (k == "lr")
      s.lr = value.cast<double>();
    else if (k == "weight_decay")
      s.weight_decay = value.cast<double>();
    else if (k == "weight_decay_params")
      s.weight_decay_params = value.cast<std::string>();
    else if (k == "seed")
      s.seed = value.cast<uint64_t>();
    else if (k == "threads")
      s.threads = value.cast<int>();
    else if (k == "device")
      s.device = value.cast<std::string>();
    else if (k == "precision")
      s.precision = value.cast<std::string>();
    else if (k == "val_split")
      s.val_split = value.cast<double>();
    else if (k == "deterministic")
      s.deterministic = value.cast<bool>();
    else if (k == "task")
      s.task = value.cast<std::string>();
    else if (k == "ignore_index")
      s.ignore_index = value.cast<int64_t>();
    else if (k == "out")
      s.out = value.cast<std::string>();
    else if (k == "print_progress")
      s.print_progress = value.cast<bool>();
    else
      throw py::value_error("unknown setting '" + k + "'");
  }
  s.handle_signals = false;  // Python's own handler raises KeyboardInterrupt; see Trainer.fit
  return s;
}

py::dict dict_of(const ga::EpochReport& e) {
  py::dict d;
  d["epoch"] = e.epoch;
  d["loss"] = e.train_loss;
  d["metric"] = e.train_metric;
  d["val_loss"] = e.eval_loss;
  d["val_metric"] = e.eval_metric;
  d["seconds"] = e.seconds;
  return d;
}

py::dict dict_of(const ga::StepReport& r) {
  py::dict d;
  d["epoch"] = r.epoch;
  d["step"] = r.step;
  d["batch"] = r.batch;
  d["batches"] = r.batches_per_epoch;
  d["rows"] = r.rows;
  d["loss"] = r.loss;
  d["lr"] = r.lr;
  return d;
}

// A Trainer whose fit() releases the GIL, takes it back after each step to check for signals
// (Ctrl-C: KeyboardInterrupt after the current step) and to run the Python functions, and stops
// the run (through request_stop, so a run directory gets its checkpoint) when either raises.
class PyTrainer {
 public:
  PyTrainer(const py::dict& settings, const ga::Model* model, const py::object& x,
            const py::object& y, const py::object& eval_x, const py::object& eval_y) {
    ga::Settings s = settings_of(settings);
    if (model == nullptr) {
      trainer_.emplace(s);
      return;
    }
    ga::Array ax = as_array(x), ay = as_array(y), aex = as_array(eval_x), aey = as_array(eval_y);
    py::gil_scoped_release nogil;  // the dataset checks read the whole of y
    trainer_.emplace(s, *model, ax, ay, aex, aey);
  }

  void on_step_end(py::function f) { step_functions_.push_back(std::move(f)); }
  void on_epoch_end(py::function f) { epoch_functions_.push_back(std::move(f)); }

  py::dict fit() {
    pending_ = py::object();
    if (!hooked_) {  // the C++ functions call back into the Python lists, added once
      hooked_ = true;
      trainer_->on_step_end([this](const ga::StepReport& r) {
        py::gil_scoped_acquire gil;
        if (!pending_ && PyErr_CheckSignals() != 0) stop_with_python_error();
        for (auto& f : step_functions_) {
          if (pending_) break;
          call_python([&] { f(dict_of(r)); });
        }
      });
      trainer_->on_epoch_end([this](const ga::EpochReport& e) {
        py::gil_scoped_acquire gil;
        for (auto& f : epoch_functions_) {
          if (pending_) break;
          call_python([&] { f(dict_of(e)); });
        }
      });
    }
    ga::FitReport r;
    try {
      py::gil_scoped_release nogil;
      r = trainer_->fit();
    } catch (...) {
      forget_functions();
      throw;
    }
    // The functions serve one fit(). Dropping them breaks the cycle a closure over this trainer
    // would make (pybind11 objects are invisible to Python's cycle collector): no leaked data.
    forget_functions();
    py::dict d;
    d["epochs"] = r.epochs;
    d["task"] = r.task;
    d["metric_name"] = r.metric_name;
    d["loss"] = r.train_loss;
    d["metric"] = r.train_metric;
    d["val_loss"] = r.eval_loss;
    d["val_metric"] = r.eval_metric;
    d["best_metric"] = r.best_metric;
    d["seconds"] = r.seconds;
    d["device"] = r.device;
    d["stopped"] = r.stopped;
    d["run_dir"] = r.run_dir;
    if (pending_) {  // KeyboardInterrupt or a callback's exception, raised after the stop
      py::object error = pending_;
      pending_ = py::object();
      error.attr("gpuml_report") = d;
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
      throw py::error_already_set();
    }
    return d;
  }

  void request_stop() { trainer_->request_stop(); }
  std::string task() const { return trainer_->task(); }
  std::string metric_name() const { return trainer_->metric_name(); }

  py::dict evaluate(const py::object& x, const py::object& y) {
    ga::Array ax = as_array(x), ay = as_array(y);
    ga::Evaluation e;
    {
      py::gil_scoped_release nogil;
      e = trainer_->evaluate(ax, ay);
    }
    py::dict d;
    d["count"] = e.count;
    d["loss"] = e.loss;
    d["metric"] = e.metric;
    d["metric_name"] = e.metric_name;
    return d;
  }

  py::object predict(const py::object& x) {
    ga::Array ax = as_array(x), out;
    {
      py::gil_scoped_release nogil;
      out = trainer_->predict(ax);
    }
    return to_numpy(out);
  }

  void save(const std::string& path) {
    py::gil_scoped_release nogil;
    trainer_->save(path);
  }

 private:
  // Runs f; a Python exception from it is kept to raise after fit() and stops the run.
  template <typename F>
  void call_python(F&& f) {
    try {
      f();
    } catch (py::error_already_set& e) {
      e.restore();
      stop_with_python_error();
    }
  }
  void forget_functions() {
    step_functions_.clear();
    epoch_functions_.clear();
  }
  void stop_with_python_error() {
    PyObject *type, *value, *trace;
    PyErr_Fetch(&type, &value, &trace);
    PyErr_NormalizeException(&type, &value, &trace);
    if (trace) PyException_SetTraceback(value, trace);
    pending_ = py::reinterpret_steal<py::object>(value);
    Py_XDECREF(type);
    Py_XDECREF(trace);
    trainer_->request_stop();
  }

  std::optional<ga::Trainer> trainer_;
  std::vector<py::function> step_functions_, epoch_functions_;
  py::object pending_;
  bool hooked_ = false;
};

}  // namespace

PYBIND11_MODULE(_gpuml, m) {
  m.doc() =
      "gpuml's C++ API (include/gpuml/gpuml.h); use the gpuml package rather than this module";

  // gpuml's error kinds as Python's exception types, with gpuml's message.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ga::Error& e) {
      switch (e.kind()) {
        case ga::Error::Kind::out_of_memory:
          PyErr_SetString(PyExc_MemoryError, e.what());
          return;
        case ga::Error::Kind::io:
          PyErr_SetString(PyExc_OSError, e.what());
          return;
        case ga::Error::Kind::internal:
          PyErr_SetString(PyExc_RuntimeError, e.what());
          return;
        default:
          PyErr_SetString(PyExc_ValueError, e.what());
          return;
      }
    }
  });

  py::class_<ArrayBuffer>(m, "ArrayBuffer", py::buffer_protocol())
      .def_buffer([](ArrayBuffer& b) -> py::buffer_info {
        const ga::DType d = b.array.dtype();
        const auto& shape = b.array.shape();
        std::vector<py::ssize_t> strides(shape.size());
        py::ssize_t stride = static_cast<py::ssize_t>(itemsize_of(d));
        for (size_t i = shape.size(); i-- > 0;) {
          strides[i] = stride;
          stride *= static_cast<py::ssize_t>(shape[i]);
        }
        return py::buffer_info(const_cast<void*>(b.array.data()),
                               static_cast<py::ssize_t>(itemsize_of(d)), format_of(d),
                               static_cast<py::ssize_t>(shape.size()),
                               std::vector<py::ssize_t>(shape.begin(), shape.end()), strides);
      });

  py::class_<ga::Model>(m, "Model")
      .def_static("preset", &ga::Model::preset)
      .def_static("from_json", &ga::Model::from_json)
      .def_static("from_file", &ga::Model::from_file)
      .def("to_json", &ga::Model::to_json)
      .def("summary", &ga::Model::summary, py::arg("batch_size") = 1)
      .def_property_readonly("input_shape", &ga::Model::input_shape)
      .def_property_readonly("num_classes", &ga::Model::num_classes)
      .def_property_readonly("num_parameters", &ga::Model::num_parameters);

  py::class_<PyTrainer>(m, "Trainer")
      .def(py::init<const py::dict&, const ga::Model*, const py::object&, const py::object&,
                    const py::object&, const py::object&>(),
           py::arg("settings"), py::arg("model").none(true), py::arg("x").none(true),
           py::arg("y").none(true), py::arg("eval_x").none(true), py::arg("eval_y").none(true))
      .def("on_step_end", &PyTrainer::on_step_end)
      .def("on_epoch_end", &PyTrainer::on_epoch_end)
      .def("fit", &PyTrainer::fit)
      .def("request_stop", &PyTrainer::request_stop)
      .def_property_readonly("task", &PyTrainer::task)
      .def_property_readonly("metric_name", &PyTrainer::metric_name)
      .def("evaluate", &PyTrainer::evaluate)
      .def("predict", &PyTrainer::predict)
      .def("save", &PyTrainer::save);

  py::class_<ga::Predictor>(m, "Predictor")
      .def_static("load", &ga::Predictor::load, py::arg("path"), py::arg("device") = "auto",
                  py::call_guard<py::gil_scoped_release>())
      .def("predict",
           [](ga::Predictor& p, const py::object& x) {
             ga::Array ax = as_array(x), out;
             {
               py::gil_scoped_release nogil;
               out = p.predict(ax);
             }
             return to_numpy(out);
           })
      .def_property_readonly("model", &ga::Predictor::model);

  // For tests and the curious: whether an input is read in place (the address gpuml reads).
  m.def("array_address", [](const py::object& x) {
    ga::Array a = as_array(x);
    return reinterpret_cast<uintptr_t>(a.data());
  });
  m.def("version", &ga::version);
  m.def("info", &ga::info);
}
