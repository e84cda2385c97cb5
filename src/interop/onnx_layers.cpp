// The layer matcher of the ONNX importer: walks the data path node by node (a few nodes at a
// time for patterns such as PyTorch's GELU) and emits one gpuml layer per match.
#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>
#include <set>

#include "backend/dispatch.h"
#include "core/error.h"
#include "interop/onnx_graph_view.h"

namespace gpuml::interop {
namespace {

using json = nlohmann::json;

struct Layer {
  json spec;                                          // model JSON of the layer, no "name"; "inputs"
                                                      // by layer index until build() names them
  std::vector<std::pair<std::string, Tensor>> params; // suffix ("weight") -> value, state_dict order
  std::string suggested_name;                         // from the initializers' names, may be empty
};

class Matcher {
 public:
  explicit Matcher(const OnnxGraphView& v) : v_(v), current_(v.input) { values_[v.input] = {"input", v.sample_shape}; }

  ImportedModel run() {
    for (size_t k = 0; k < v_.path.size();) k += match(k);
    GPUML_CHECK(!layers_.empty(), "{}: the graph has no layers on its data path", v_.what);
    auto out = values_.find(v_.output);
    GPUML_CHECK(out != values_.end() && out->second.ref == std::to_string(layers_.size() - 1),
                "{}: the output '{}' is not the last layer's output", v_.what, v_.output);
    return build(choose_names());
  }

 private:
  const onnx::NodeProto& node(size_t k) const { return v_.graph->node(v_.path[k]); }

  // A value computed from the model's input: which gpuml output holds it ("input", or a layer's
  // index), and its per-sample shape. Nodes that change nothing (Identity, Dropout, a Reshape to
  // the same shape) alias their output to their input's value.
  struct Value {
    std::string ref;
    Shape shape;
  };

  const Value* value(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : &it->second;
  }

  // The number of path nodes consumed. The node's data input (an embedding's indices, otherwise
  // its first input) becomes current_; a layer takes it from wherever it was computed, so values
  // used by several nodes, branches and merges (Add, Concat) import as they are.
  size_t match(size_t k) {
    const onnx::NodeProto& n = node(k);
    const std::string& t = n.op_type();
    std::string what = v_.what + ": " + node_label(n);
    const int data_input = t == "Gather" ? 1 : 0;
    GPUML_CHECK(data_input < n.input_size() && value(n.input(data_input)),
                "{}: its data input '{}' is not computed from the model's input", what,
                data_input < n.input_size() ? n.input(data_input) : std::string());
    current_ = n.input(data_input);
    shape_ = value(current_)->shape;
    if (t == "Add" && n.input_size() == 2 && value(n.input(1))) return merge(n, what, {{"type", "Add"}});
    if (t == "Concat") {
      int64_t axis = attr_int(n, "axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(shape_.size()) + 1;
      GPUML_CHECK_KIND(ErrorKind::Unsupported, axis >= 1, "{}: a Concat along the batch axis is not a gpuml layer",
                       what);
      return merge(n, what, {{"type", "Concat"}, {"dim", axis}});
    }
    if (t == "Identity" || t == "Dropout") return advance(n, 1);
    // gpuml's Embedding casts float inputs to indices itself.
    if (t == "Cast" && k + 1 < v_.path.size() && node(k + 1).op_type() == "Gather") return advance(n, 1);
    if (t == "Relu" || t == "Tanh" || t == "Sigmoid") {
      static const std::map<std::string, std::string> names = {{"Relu", "ReLU"}, {"Tanh", "Tanh"}, {"Sigmoid", "Sigmoid"}};
      return push({{"type", names.at(t)}}, {}, n, 1);
    }
    if (t == "Gelu") {
      json spec = {{"type", "GELU"}};
      if (attr_string(n, "approximate", "none") == "tanh") spec["approximate"] = "tanh";
      return push(spec, {}, n, 1);
    }
    if (t == "Div" || t == "Mul") return gelu_pattern(k, what);
    if (t == "Softmax" || t == "LogSoftmax") {
      GPUML_CHECK(k + 1 == v_.path.size() && n.output(0) == v_.output,
                  "{}: a softmax is only accepted as the last node (gpuml's loss and predict apply their own)", what);
      return advance(n, 1);  // stripped: the model outputs logits
    }
    if (t == "Gemm") return gemm(n, what);
    if (t == "MatMul") return matmul(k, what);
    if (t == "Conv") return conv(n, what);
    if (t == "MaxPool" || t == "AveragePool") return pool(n, what);
    if (t == "BatchNormalization") return batch_norm(n, what);
    if (t == "LayerNormalization") return layer_norm(n, what);
    if (t == "Flatten") {
      int64_t axis = attr_int(n, "axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(shape_.size()) + 1;
      GPUML_CHECK(axis == 1, "{}: only Flatten(axis=1) (keep the batch, flatten the rest) is supported", what);
      return push({{"type", "Flatten"}}, {}, n, 1);
    }
    if (t == "Reshape") return reshape(n, what);
    if (t == "Pad") {  // PyTorch writes a zero Pad before some AveragePools
      bool zero = true;
      for (double p : constant(n, 1, what, "pads").to_doubles()) zero &= p == 0;
      GPUML_CHECK_KIND(ErrorKind::Unsupported, zero, "{}: only an all-zero Pad is supported on the data path", what);
      return advance(n, 1);
    }
    if (t == "Gather") return gather(n, what);
    GPUML_FAIL(ErrorKind::Unsupported, "{}: on the data path, {} cannot be expressed as a gpuml layer "
               "(it is only supported on constants)", what, t);
  }

  const Tensor& constant(const onnx::NodeProto& n, int index, const std::string& what, const std::string& role) {
    GPUML_CHECK(index < n.input_size() && !n.input(index).empty(), "{}: missing {} (input {})", what, role, index);
    auto it = v_.constants.find(n.input(index));
    GPUML_CHECK_KIND(ErrorKind::Unsupported, it != v_.constants.end(),
                     "{}: {} '{}' must be a constant (initializer), it is computed at run time", what, role,
                     n.input(index));
    return it->second;
  }
  bool has_input(const onnx::NodeProto& n, int index) const { return index < n.input_size() && !n.input(index).empty(); }

  static Tensor as_f32(const Tensor& t, const std::string& what) {
    GPUML_CHECK_KIND(ErrorKind::DType, is_floating(t.dtype()), "{}: weights must be floating point, got {}", what,
                     t.dtype());
    Attrs a;
    a.dtype = DType::f32;
    return run_op(backend_registry().reference(), OpId::cast, {t}, a);
  }

  static double scalar_of(const Tensor& t) { return t.numel() == 1 ? t.item_as_double(0) : NAN; }

  // A suggested layer name: the initializer's name minus ".weight", when it is a plain prefix.
  static std::string prefix_of(const std::string& initializer) {
    const std::string suffix = ".weight";
    if (initializer.size() <= suffix.size() ||
        initializer.compare(initializer.size() - suffix.size(), suffix.size(), suffix) != 0)
      return "";
    std::string p = initializer.substr(0, initializer.size() - suffix.size());
    return p.find('.') == std::string::npos && p.find(':') == std::string::npos ? p : "";
  }

  size_t advance(const onnx::NodeProto& n, size_t consumed) {
    values_[n.output(0)] = values_.at(current_);
    return consumed;
  }

  // The layer's output under `last`'s first output; it takes current_'s value, named in "inputs"
  // when that is not the previous layer's output.
  size_t push(json spec, std::vector<std::pair<std::string, Tensor>> params, const onnx::NodeProto& last,
              size_t consumed, const std::string& suggested = "") {
    const std::string& from = values_.at(current_).ref;
    if (from != (layers_.empty() ? "input" : std::to_string(layers_.size() - 1))) spec["inputs"] = {from};
    return emit(std::move(spec), std::move(params), last, consumed, suggested);
  }

  size_t emit(json spec, std::vector<std::pair<std::string, Tensor>> params, const onnx::NodeProto& last,
              size_t consumed, const std::string& suggested = "") {
    layers_.push_back({std::move(spec), std::move(params), suggested});
    // gpuml's shape rules check that the layer fits
    values_[last.output(0)] = {std::to_string(layers_.size() - 1), model_so_far().output_shape()};
    return consumed;
  }

  // Add or Concat of values computed from the input (constants are folded before, or belong to a
  // Linear's bias): a merge layer naming each input.
  size_t merge(const onnx::NodeProto& n, const std::string& what, json spec) {
    json inputs = json::array();
    for (const std::string& name : n.input()) {
      const Value* in = value(name);
      GPUML_CHECK_KIND(ErrorKind::Unsupported, in != nullptr,
                       "{}: input '{}' is a constant; gpuml merges (Add, Concat) only values computed from the input",
                       what, name);
      inputs.push_back(in->ref);
    }
    GPUML_CHECK(inputs.size() >= 2, "{}: a merge needs two or more inputs", what);
    spec["inputs"] = inputs;
    return emit(std::move(spec), {}, n, 1);
  }

  nn::Model model_so_far() const {
    json layers = json::array();
    for (const Layer& l : layers_) layers.push_back(l.spec);
    try {
      return nn::Model::from_json({{"input_shape", v_.sample_shape}, {"layers", layers}});
    } catch (const Error& e) {
      GPUML_FAIL(e.kind(), "{}: the imported layers do not fit together: {}", v_.what, e.message());
    }
  }

  size_t gelu_pattern(size_t k, const std::string& what) {
    auto is = [&](size_t i, const char* type) { return k + i < v_.path.size() && node(k + i).op_type() == type; };
    auto other = [&](size_t i, const std::string& mine) {  // the binary node's other input
      const onnx::NodeProto& n = node(k + i);
      return n.input_size() == 2 ? (n.input(0) == mine ? n.input(1) : n.input(0)) : std::string();
    };
    auto near = [&](const std::string& name, double want) {
      auto it = v_.constants.find(name);
      return it != v_.constants.end() && std::abs(scalar_of(it->second) - want) < 1e-4 * std::max(1.0, std::abs(want));
    };
    auto out = [&](size_t i) { return node(k + i).output(0); };  // every node has one (onnx_import.cpp)
    // Input j of path node k + i, or "" when the node has fewer inputs (a Div or Erf with none).
    auto in = [&](size_t i, int j) {
      const onnx::NodeProto& n = node(k + i);
      return j < n.input_size() ? n.input(j) : std::string();
    };
    const std::string& x = current_;
    // PyTorch (erf): Div(x, sqrt2) -> Erf -> Add(., 1) -> Mul(x, .) -> Mul(., 0.5)
    if (is(0, "Div") && is(1, "Erf") && is(2, "Add") && is(3, "Mul") && is(4, "Mul") &&
        in(0, 0) == x && near(in(0, 1), std::numbers::sqrt2) && in(1, 0) == out(0) &&
        near(other(2, out(1)), 1.0) && other(3, out(2)) == x && near(other(4, out(3)), 0.5))
      return push({{"type", "GELU"}}, {}, node(k + 4), 5);
    // gpuml (tanh): Mul(x,x) Mul(.,x) Mul(.,0.044715) Add(x,.) Mul(.,sqrt(2/pi)) Tanh Add(.,1) Mul(x,.) Mul(.,0.5)
    if (is(0, "Mul") && is(1, "Mul") && is(2, "Mul") && is(3, "Add") && is(4, "Mul") && is(5, "Tanh") &&
        is(6, "Add") && is(7, "Mul") && is(8, "Mul") && in(0, 0) == x && in(0, 1) == x && other(1, out(0)) == x &&
        near(other(2, out(1)), 0.044715) && other(3, out(2)) == x &&
        near(other(4, out(3)), std::sqrt(2.0 / std::numbers::pi)) && near(other(6, out(5)), 1.0) &&
        other(7, out(6)) == x && near(other(8, out(7)), 0.5))
      return push({{"type", "GELU"}, {"approximate", "tanh"}}, {}, node(k + 8), 9);
    GPUML_FAIL(ErrorKind::Unsupported, "{}: a lone {} on the data path is not a gpuml layer (only the GELU "
               "formula is recognised)", what, node(k).op_type());
  }

  size_t gemm(const onnx::NodeProto& n, const std::string& what) {
    GPUML_CHECK(attr_int(n, "transA", 0) == 0, "{}: transA=1 is not supported", what);
    Tensor b = as_f32(constant(n, 1, what, "B"), what);
    GPUML_CHECK_SHAPE(b.ndim() == 2, "{}: B must be 2-d, it is {}", what, shape_str(b.shape()));
    Tensor w = contiguous(attr_int(n, "transB", 0) ? b : b.transpose(0, 1), backend_registry().reference());
    double alpha = attr_float(n, "alpha", 1.0f), beta = attr_float(n, "beta", 1.0f);
    if (alpha != 1.0) w = scaled(w, alpha);
    int64_t out = w.dim(0), in = w.dim(1);
    json spec = {{"type", "Linear"}, {"in_features", in}, {"out_features", out}};
    std::vector<std::pair<std::string, Tensor>> params = {{"weight", w}};
    if (has_input(n, 2)) {
      Tensor c = as_f32(constant(n, 2, what, "C"), what);
      GPUML_CHECK_SHAPE(c.numel() == out || c.numel() == 1, "{}: C {} does not broadcast to ({})", what,
                        shape_str(c.shape()), out);
      Tensor bias = c.numel() == out ? contiguous(c, backend_registry().reference()).reshape({out})
                                     : Tensor::from_values({out}, std::vector<double>(out, scalar_of(c)), DType::f32);
      params.emplace_back("bias", beta == 1.0 ? bias : scaled(bias, beta));
    } else {
      spec["bias"] = false;
    }
    return push(spec, params, n, 1, prefix_of(n.input(1)));
  }

  size_t matmul(size_t k, const std::string& what) {
    const onnx::NodeProto& n = node(k);
    Tensor b = as_f32(constant(n, 1, what, "B"), what);
    GPUML_CHECK_SHAPE(b.ndim() == 2, "{}: the weight must be 2-d, it is {}", what, shape_str(b.shape()));
    Tensor w = contiguous(b.transpose(0, 1), backend_registry().reference());  // (out, in)
    int64_t out = w.dim(0), in = w.dim(1);
    json spec = {{"type", "Linear"}, {"in_features", in}, {"out_features", out}};
    std::vector<std::pair<std::string, Tensor>> params = {{"weight", w}};
    if (k + 1 < v_.path.size() && node(k + 1).op_type() == "Add" && node(k + 1).input_size() == 2) {
      const onnx::NodeProto& add = node(k + 1);
      std::string other = add.input(0) == n.output(0) ? add.input(1) : add.input(0);
      auto c = v_.constants.find(other);
      if (c != v_.constants.end() && c->second.numel() == out) {
        params.emplace_back("bias", contiguous(as_f32(c->second, what), backend_registry().reference()).reshape({out}));
        return push(spec, params, add, 2, prefix_of(n.input(1)));
      }
    }
    spec["bias"] = false;
    return push(spec, params, n, 1, prefix_of(n.input(1)));
  }

  // ONNX spatial attributes -> one gpuml value: both dims equal, pads symmetric.
  static int64_t square(const std::vector<int64_t>& v, int64_t fallback, const std::string& what, const char* name) {
    if (v.empty()) return fallback;
    for (int64_t x : v)
      GPUML_CHECK_KIND(ErrorKind::Unsupported, x == v[0] && x >= 0,
                       "{}: {} [{}] must be equal in every spatial dim (gpuml layers take one value)", what, name,
                       fmt::join(v, ", "));
    return v[0];
  }

  void check_2d(const onnx::NodeProto& n, const std::string& what) {
    GPUML_CHECK_KIND(ErrorKind::Unsupported, shape_.size() == 3, "{}: only 2-d (N, C, H, W) inputs are supported, "
                     "per-sample input is {}", what, shape_str(shape_));
    std::string pad = attr_string(n, "auto_pad", "NOTSET");
    GPUML_CHECK_KIND(ErrorKind::Unsupported, pad == "NOTSET" || pad == "VALID", "{}: auto_pad {} is not supported",
                     what, pad);
  }

  size_t conv(const onnx::NodeProto& n, const std::string& what) {
    check_2d(n, what);
    Tensor w = as_f32(constant(n, 1, what, "W"), what);
    GPUML_CHECK_SHAPE(w.ndim() == 4, "{}: W must be (O, C/group, kH, kW), it is {}", what, shape_str(w.shape()));
    int64_t kernel = square(attr_ints(n, "kernel_shape", {w.dim(2), w.dim(3)}), 1, what, "kernel_shape");
    GPUML_CHECK_SHAPE(w.dim(2) == kernel && w.dim(3) == kernel, "{}: W {} does not match kernel_shape", what,
                      shape_str(w.shape()));
    int64_t groups = attr_int(n, "group", 1);
    GPUML_CHECK(groups >= 1, "{}: group must be >= 1", what);
    json spec = {{"type", "Conv2d"},
                 {"in_channels", w.dim(1) * groups},
                 {"out_channels", w.dim(0)},
                 {"kernel_size", kernel},
                 {"stride", square(attr_ints(n, "strides", {}), 1, what, "strides")},
                 {"padding", square(attr_ints(n, "pads", {}), 0, what, "pads")},
                 {"dilation", square(attr_ints(n, "dilations", {}), 1, what, "dilations")},
                 {"groups", groups}};
    std::vector<std::pair<std::string, Tensor>> params = {{"weight", w}};
    if (has_input(n, 2))
      params.emplace_back("bias", as_f32(constant(n, 2, what, "B"), what));
    else
      spec["bias"] = false;
    return push(spec, params, n, 1, prefix_of(n.input(1)));
  }

  size_t pool(const onnx::NodeProto& n, const std::string& what) {
    check_2d(n, what);
    bool is_max = n.op_type() == "MaxPool";
    GPUML_CHECK_KIND(ErrorKind::Unsupported, attr_int(n, "ceil_mode", 0) == 0, "{}: ceil_mode=1 is not supported", what);
    GPUML_CHECK_KIND(ErrorKind::Unsupported, n.output_size() == 1 || n.output(1).empty(),
                     "{}: the Indices output is not supported", what);
    if (is_max)
      GPUML_CHECK_KIND(ErrorKind::Unsupported, square(attr_ints(n, "dilations", {}), 1, what, "dilations") == 1,
                       "{}: dilated pooling is not supported", what);
    std::vector<int64_t> k = attr_ints(n, "kernel_shape", {});
    GPUML_CHECK(k.size() == 2, "{}: kernel_shape must have 2 values", what);
    json spec = {{"type", is_max ? "MaxPool2d" : "AvgPool2d"},
                 {"kernel_size", square(k, 1, what, "kernel_shape")},
                 {"stride", square(attr_ints(n, "strides", {}), 1, what, "strides")},
                 {"padding", square(attr_ints(n, "pads", {}), 0, what, "pads")}};
    if (!is_max) spec["count_include_pad"] = attr_int(n, "count_include_pad", 0) != 0;
    return push(spec, {}, n, 1);
  }

  size_t batch_norm(const onnx::NodeProto& n, const std::string& what) {
    GPUML_CHECK_KIND(ErrorKind::Unsupported, attr_int(n, "training_mode", 0) == 0,
                     "{}: training_mode=1 is not supported", what);
    std::vector<std::pair<std::string, Tensor>> params;
    const char* roles[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; ++i) params.emplace_back(roles[i], as_f32(constant(n, i + 1, what, roles[i]), what));
    params.emplace_back("num_batches_tracked", Tensor::from_values({}, {0.0}, DType::i64));
    GPUML_CHECK(!shape_.empty(), "{}: needs a channel dim", what);
    double momentum = 1.0 - attr_float(n, "momentum", 0.9f);  // ONNX keeps 0.9 of the old value; torch says 0.1
    json spec = {{"type", shape_.size() == 3 ? "BatchNorm2d" : "BatchNorm1d"},
                 {"num_features", shape_[0]},
                 {"eps", attr_float(n, "epsilon", 1e-5f)},
                 {"momentum", std::clamp(momentum, 0.0, 1.0)}};
    return push(spec, params, n, 1, prefix_of(n.input(1)));
  }

  size_t layer_norm(const onnx::NodeProto& n, const std::string& what) {
    int64_t rank = static_cast<int64_t>(shape_.size()) + 1;
    int64_t axis = attr_int(n, "axis", -1);
    if (axis < 0) axis += rank;
    GPUML_CHECK(axis >= 1 && axis < rank, "{}: axis {} must normalise per-sample dims only", what, axis);
    Shape normalized(shape_.begin() + (axis - 1), shape_.end());
    Tensor scale = as_f32(constant(n, 1, what, "Scale"), what);
    GPUML_CHECK_SHAPE(scale.numel() == numel(normalized), "{}: Scale {} does not match the normalised dims {}", what,
                      shape_str(scale.shape()), shape_str(normalized));
    Tensor bias = has_input(n, 2) ? as_f32(constant(n, 2, what, "B"), what)
                                  : Tensor::from_values(normalized, std::vector<double>(numel(normalized), 0.0), DType::f32);
    Backend& ref = backend_registry().reference();
    std::vector<std::pair<std::string, Tensor>> params = {{"weight", contiguous(scale, ref).reshape(normalized)},
                                                          {"bias", contiguous(bias, ref).reshape(normalized)}};
    json spec = {{"type", "LayerNorm"}, {"normalized_shape", normalized}, {"eps", attr_float(n, "epsilon", 1e-5f)}};
    return push(spec, params, n, 1, prefix_of(n.input(1)));
  }

  size_t reshape(const onnx::NodeProto& n, const std::string& what) {
    const Tensor& target = constant(n, 1, what, "shape");
    std::vector<int64_t> s;
    for (double d : target.to_doubles()) {  // casting a double past int64 is undefined
      GPUML_CHECK(std::abs(d) < 0x1p62, "{}: Reshape target dim {} is out of range", what, d);
      s.push_back(static_cast<int64_t>(d));
    }
    int64_t flat = numel(shape_);
    bool batch_first = !s.empty() && (s[0] == 0 || s[0] == -1);
    if (s.size() == 2 && batch_first && (s[1] == flat || (s[1] == -1 && s[0] == 0)))
      return push({{"type", "Flatten"}}, {}, n, 1);
    bool same = s.size() == shape_.size() + 1 && batch_first;
    for (size_t i = 1; same && i < s.size(); ++i) same = s[i] == shape_[i - 1] || s[i] == 0;
    GPUML_CHECK_KIND(ErrorKind::Unsupported, same, "{}: Reshape to [{}] is not a flatten; gpuml has no reshape layer",
                     what, fmt::join(s, ", "));
    return advance(n, 1);
  }

  size_t gather(const onnx::NodeProto& n, const std::string& what) {
    GPUML_CHECK(n.input_size() == 2 && n.input(1) == current_ && attr_int(n, "axis", 0) == 0,
                "{}: only Gather(weight, indices=previous output, axis=0) (an embedding) is supported", what);
    Tensor w = as_f32(constant(n, 0, what, "data"), what);
    GPUML_CHECK_SHAPE(w.ndim() == 2, "{}: the embedding table must be 2-d, it is {}", what, shape_str(w.shape()));
    json spec = {{"type", "Embedding"}, {"num_embeddings", w.dim(0)}, {"embedding_dim", w.dim(1)}};
    return push(spec, {{"weight", w}}, n, 1, prefix_of(n.input(0)));
  }

  static Tensor scaled(const Tensor& t, double factor) {
    std::vector<double> v = t.to_doubles();
    for (double& x : v) x *= factor;
    return Tensor::from_values(t.shape(), v, DType::f32);
  }

  // Layers with parameters keep their initializers' prefixes when those name every such layer
  // uniquely (so state_dict names match PyTorch's); parameterless layers take their index, or
  // "<type><index>" where the index is taken. Otherwise every layer is named by its index.
  std::vector<std::string> choose_names() const {
    std::vector<std::string> names(layers_.size());
    std::set<std::string> used;
    bool ok = true;
    for (size_t i = 0; i < layers_.size(); ++i)
      if (!layers_[i].params.empty()) {
        names[i] = layers_[i].suggested_name;
        ok &= !names[i].empty() && names[i] != "input" && used.insert(names[i]).second;
      }
    for (size_t i = 0; ok && i < layers_.size(); ++i)
      if (layers_[i].params.empty()) {
        names[i] = std::to_string(i);
        if (used.count(names[i])) names[i] = layers_[i].spec["type"].get<std::string>() + names[i];
        ok &= used.insert(names[i]).second;
      }
    if (ok) return names;
    for (size_t i = 0; i < layers_.size(); ++i) names[i] = std::to_string(i);
    return names;
  }

  ImportedModel build(const std::vector<std::string>& names) const {
    json layers = json::array();
    NamedTensors weights;
    for (size_t i = 0; i < layers_.size(); ++i) {
      json spec = layers_[i].spec;
      if (names[i] != std::to_string(i)) spec["name"] = names[i];
      if (spec.contains("inputs"))
        for (json& ref : spec["inputs"])
          if (ref != "input") ref = names[std::stoul(ref.get<std::string>())];
      layers.push_back(spec);
      for (const auto& [suffix, t] : layers_[i].params) weights.emplace_back(names[i] + "." + suffix, t);
    }
    nn::Model model = nn::Model::from_json({{"input_shape", v_.sample_shape}, {"layers", layers}});
    for (const nn::ParamInfo& p : model.param_infos())
      for (const auto& [name, t] : weights)
        if (name == p.name)
          GPUML_CHECK_SHAPE(t.shape() == p.shape, "{}: '{}' has shape {}, the layer expects {}", v_.what, name,
                            shape_str(t.shape()), shape_str(p.shape));
    return {std::move(model), std::move(weights), ""};
  }

  const OnnxGraphView& v_;
  std::string current_;  // the data input of the node being matched
  Shape shape_ = v_.sample_shape;  // its per-sample shape
  std::map<std::string, Value> values_;
  std::vector<Layer> layers_;
};

}  // namespace

ImportedModel layers_from_graph(const OnnxGraphView& view) { return Matcher(view).run(); }

}  // namespace gpuml::interop
