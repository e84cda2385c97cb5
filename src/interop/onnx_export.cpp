#include "interop/onnx_export.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <set>

#include "backend/dispatch.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "interop/onnx_proto_util.h"
#include "ops/type_rules.h"

namespace gpuml::interop {
namespace {

// The batch size the graph is built with. Any value works; the batch axis is tracked through the
// ops and written as the dynamic dim "batch".
constexpr int64_t kProbeBatch = 2;

struct Value {
  bool constant = false;
  Tensor tensor;          // constant: its value (host)
  std::string param;      // constant: the state_dict name it came from (a param or a reshape of one)
  std::string name;       // dynamic: the ONNX value name
  bool batch_major = false;  // dynamic: dim 0 is the batch
  int64_t merged = 0;        // dynamic: dim 0 is the batch times `merged` (a Linear's (N*T, C) rows), or 0
};

// A node whose trailing bias can still be fused in (Gemm's C, Conv's B).
struct Fusable {
  int node_index = -1;
  int64_t channels = 0;
};

class Exporter {
 public:
  Exporter(const Graph& g, const NamedTensors& weights, onnx::GraphProto& out) : g_(g), gp_(out) {
    for (const auto& [name, t] : weights) weights_[name] = t;
    values_.resize(static_cast<size_t>(g.size()));
    uses_.assign(static_cast<size_t>(g.size()), 0);
  }

  void run(const std::vector<std::pair<int, std::string>>& outputs) {
    std::vector<bool> live(values_.size(), false);
    for (const auto& [id, name] : outputs) live[id] = true, ++uses_[id];
    for (int id = g_.size() - 1; id >= 0; --id)
      if (live[id])
        for (int in : g_.node(id).inputs) live[in] = true, ++uses_[in];
    for (int id = 0; id < g_.size(); ++id)
      if (live[id]) translate(id);
    GPUML_CHECK_KIND(ErrorKind::Unsupported, unsupported_.empty(), "ONNX export: no ONNX translation for: {}",
                     fmt::join(unsupported_, "; "));
    for (const auto& [id, want] : outputs) {
      const Value& v = values_[id];
      GPUML_CHECK_KIND(ErrorKind::Unsupported, !v.constant, "ONNX export: output '{}' does not depend on the input",
                       want);
      rename(v.name, want);
      onnx::ValueInfoProto* info = gp_.add_output();
      describe(*info, want, g_.node(id).type, v.batch_major);
    }
  }

 private:
  void translate(int id) {
    const Node& n = g_.node(id);
    Value& v = values_[id];
    if (n.role == NodeRole::Input) {
      v.name = n.name;
      v.batch_major = true;
      describe(*gp_.add_input(), n.name, n.type, true);
      return;
    }
    if (n.role == NodeRole::Param) {
      auto it = weights_.find(n.name);
      GPUML_CHECK(it != weights_.end(), "ONNX export: no weight named '{}'", n.name);
      GPUML_CHECK_SHAPE(it->second.shape() == n.type.shape, "ONNX export: weight '{}' has shape {}, the model expects {}",
                        n.name, shape_str(it->second.shape()), shape_str(n.type.shape));
      v.constant = true;
      v.tensor = it->second;
      v.param = n.name;
      return;
    }
    // layer_norm's outputs 1 and 2 (mean, rstd) are LayerNormalization's optional Mean and
    // InvStdDev, which the exporter leaves out: only the backward reads them, and it is not exported.
    GPUML_CHECK_KIND(ErrorKind::Unsupported, n.role == NodeRole::Op,
                     "ONNX export: the model reads output {} of {}, and the exporter translates only output 0",
                     n.output_index, op_name(g_.node(n.inputs[0]).op));
    // attention's output 1 (lse) is likewise only for its backward.
    GPUML_CHECK_KIND(ErrorKind::Unsupported,
                     op_info(n.op).outputs == 1 || n.op == OpId::layer_norm || n.op == OpId::attention,
                     "ONNX export: {} gives {} outputs, and the exporter translates only one-output ops",
                     op_name(n.op), op_info(n.op).outputs);
    bool all_constant = !draws_philox(n.op);
    for (int in : n.inputs) all_constant &= values_[in].constant;
    if (all_constant) return fold(id);
    translate_op(id, n);
  }

  // Computes a constant op once (reference backend); reshapes keep the param's name.
  void fold(int id) {
    const Node& n = g_.node(id);
    std::vector<Tensor> inputs;
    for (int in : n.inputs) inputs.push_back(values_[in].tensor);
    Value& v = values_[id];
    v.constant = true;
    v.tensor = run_op_outputs(backend_registry().reference(), n.op, inputs, n.attrs)[0];  // layer_norm: y
    if (n.op == OpId::reshape) v.param = values_[n.inputs[0]].param;
  }

  void translate_op(int id, const Node& n) {
    static const std::map<OpId, const char*> kSame = {
        {OpId::neg, "Neg"},   {OpId::abs, "Abs"},       {OpId::sign, "Sign"},   {OpId::exp, "Exp"},
        {OpId::log, "Log"},   {OpId::sqrt, "Sqrt"},     {OpId::tanh, "Tanh"},   {OpId::sigmoid, "Sigmoid"},
        {OpId::relu, "Relu"}, {OpId::copy, "Identity"}, {OpId::add, "Add"},     {OpId::sub, "Sub"},
        {OpId::mul, "Mul"},   {OpId::div, "Div"},       {OpId::pow, "Pow"},     {OpId::maximum, "Max"},
        {OpId::minimum, "Min"}, {OpId::eq, "Equal"},    {OpId::lt, "Less"},     {OpId::le, "LessOrEqual"},
        {OpId::gt, "Greater"}, {OpId::ge, "GreaterOrEqual"}, {OpId::where, "Where"}, {OpId::concat, "Concat"},
        {OpId::embedding, "Gather"}};
    const Attrs& a = n.attrs;
    bool batch_major = false;
    int64_t merged = 0;
    for (int i : n.inputs)
      if (!values_[i].constant) batch_major |= values_[i].batch_major, merged = std::max(merged, values_[i].merged);
    values_[id].batch_major = batch_major;
    values_[id].merged = merged;
    if (n.op == OpId::add && fuse_bias(id, n)) return;
    std::vector<std::string> in;
    for (int i : n.inputs) in.push_back(input(i));
    if (auto it = kSame.find(n.op); it != kSame.end()) {
      onnx::NodeProto& node = add(id, it->second, in);
      if (n.op == OpId::concat) set_int(node, "axis", a.axis);
      if (n.op == OpId::embedding) set_int(node, "axis", 0);
      return;
    }
    switch (n.op) {
      case OpId::rsqrt: add(id, "Reciprocal", {step(id, "Sqrt", {in[0]})}); return;
      case OpId::ne: add(id, "Not", {step(id, "Equal", in)}); return;
      case OpId::cast: set_int(add(id, "Cast", in), "to", onnx_type_of(a.dtype)); return;
      case OpId::gelu: return gelu(id, in[0], a.gelu_tanh, n.type.dtype);
      case OpId::sum: case OpId::mean: case OpId::max: return reduce(id, n, in[0]);
      case OpId::argmax: {
        onnx::NodeProto& node = add(id, "ArgMax", in);
        set_int(node, "axis", a.axis);
        set_int(node, "keepdims", a.keepdim);
        return;
      }
      case OpId::softmax: case OpId::log_softmax:
        set_int(add(id, n.op == OpId::softmax ? "Softmax" : "LogSoftmax", in), "axis", a.axis);
        return;
      case OpId::matmul: return matmul(id, n, in);
      case OpId::attention: return attention(id, n, in);
      case OpId::conv2d: {
        const Shape& w = g_.node(n.inputs[1]).type.shape;  // (O, C/g, kH, kW)
        onnx::NodeProto& node = add(id, "Conv", in);
        set_ints(node, "kernel_shape", {w[2], w[3]});
        set_ints(node, "strides", {a.stride[0], a.stride[1]});
        set_ints(node, "pads", {a.padding[0], a.padding[1], a.padding[0], a.padding[1]});
        set_ints(node, "dilations", {a.dilation[0], a.dilation[1]});
        set_int(node, "group", a.groups);
        fusable_[id] = {gp_.node_size() - 1, w[0]};
        return;
      }
      case OpId::max_pool2d: case OpId::avg_pool2d: {
        bool is_max = n.op == OpId::max_pool2d;
        onnx::NodeProto& node = add(id, is_max ? "MaxPool" : "AveragePool", in);
        set_ints(node, "kernel_shape", {a.kernel[0], a.kernel[1]});
        set_ints(node, "strides", {a.stride[0], a.stride[1]});
        set_ints(node, "pads", {a.padding[0], a.padding[1], a.padding[0], a.padding[1]});
        if (is_max) set_ints(node, "dilations", {a.dilation[0], a.dilation[1]});
        else set_int(node, "count_include_pad", a.count_include_pad);
        return;
      }
      case OpId::layer_norm: {  // output 0 only (Mean and InvStdDev are optional in ONNX)
        onnx::NodeProto& node = add(id, "LayerNormalization", in);
        set_int(node, "axis", a.axis);
        set_float(node, "epsilon", static_cast<float>(a.eps));
        return;
      }
      case OpId::batch_norm:
        if (a.training) return unsupported(id, "batch_norm in training mode (export uses running statistics)");
        set_float(add(id, "BatchNormalization", in), "epsilon", static_cast<float>(a.eps));
        return;
      case OpId::dropout:
        if (a.training && a.p > 0) return unsupported(id, "dropout in training mode");
        add(id, "Identity", in);
        return;
      case OpId::reshape: return reshape(id, n, in[0]);
      case OpId::permute:
        set_ints(add(id, "Transpose", in), "perm", a.axes);
        values_[id].batch_major = batch_major && a.axes[0] == 0;
        return;
      case OpId::slice: {
        std::vector<std::string> args = {in[0], int_const(id, "starts", a.starts), int_const(id, "ends", a.ends),
                                         int_const(id, "axes", a.axes)};
        if (!a.steps.empty()) args.push_back(int_const(id, "steps", a.steps));
        add(id, "Slice", args);
        for (int64_t axis : a.axes) values_[id].batch_major &= axis != 0;
        return;
      }
      case OpId::broadcast_to: {
        Shape target = a.shape;  // Expand broadcasts: 1 keeps the input's (batch) dim
        if (batch_major && !target.empty()) target[0] = 1;
        add(id, "Expand", {in[0], int_const(id, "shape", target)});
        return;
      }
      case OpId::pad: {
        const size_t nd = a.pads.size() / 2;  // gpuml: (before, after) per dim; ONNX: all befores, then afters
        std::vector<int64_t> pads(a.pads.size());
        for (size_t d = 0; d < nd; ++d) pads[d] = a.pads[2 * d], pads[nd + d] = a.pads[2 * d + 1];
        add(id, "Pad", {in[0], int_const(id, "pads", pads), scalar(a.value, g_.node(n.inputs[0]).type.dtype)});
        return;
      }
      default: return unsupported(id, std::string(op_name(n.op)));
    }
  }

  void gelu(int id, const std::string& x, bool tanh_form, DType dtype) {
    std::string inner;
    if (tanh_form) {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      std::string cube = step(id, "Mul", {step(id, "Mul", {x, x}), x});
      std::string sum = step(id, "Add", {x, step(id, "Mul", {cube, scalar(0.044715, dtype)})});
      inner = step(id, "Tanh", {step(id, "Mul", {sum, scalar(std::sqrt(2.0 / std::numbers::pi), dtype)})});
    } else {  // 0.5 x (1 + erf(x / sqrt(2)))
      inner = step(id, "Erf", {step(id, "Div", {x, scalar(std::numbers::sqrt2, dtype)})});
    }
    std::string scaled = step(id, "Mul", {x, step(id, "Add", {inner, scalar(1.0, dtype)})});
    add(id, "Mul", {scaled, scalar(0.5, dtype)});
  }

  void reduce(int id, const Node& n, const std::string& x) {
    const Attrs& a = n.attrs;
    const char* type = n.op == OpId::sum ? "ReduceSum" : n.op == OpId::mean ? "ReduceMean" : "ReduceMax";
    std::vector<std::string> args = {x};
    if (n.op == OpId::sum && !a.axes.empty()) args.push_back(int_const(id, "axes", a.axes));  // an input since opset 13
    onnx::NodeProto& node = add(id, type, args);
    if (n.op != OpId::sum && !a.axes.empty()) set_ints(node, "axes", a.axes);  // still an attribute in opset 17
    set_int(node, "keepdims", a.keepdim);
    for (int64_t axis : a.axes) values_[id].batch_major &= axis != 0 || a.keepdim;
    if (a.axes.empty()) values_[id].batch_major = false;
  }

  // attention (eval: no dropout) in opset-17 ops: Softmax(q k^T scale [+ causal mask]) v, the
  // mask a constant (Tq, Tk) of 0 and -inf (bottom-right aligned, as the op).
  void attention(int id, const Node& n, const std::vector<std::string>& in) {
    const TensorType& q = g_.node(n.inputs[0]).type;
    const AttentionDims dims = attention_dims(q.shape, g_.node(n.inputs[1]).type.shape, n.attrs);
    if (n.attrs.training && n.attrs.p > 0)
      return unsupported(id, "attention with dropout in training mode (export writes the eval graph)");
    std::string kt = step(id, "Transpose", {in[1]});
    set_ints(*last_node(), "perm", {0, 1, 3, 2});
    std::string scores = step(id, "Mul", {step(id, "MatMul", {in[0], kt}), scalar(dims.scale, q.dtype)});
    if (n.attrs.causal) {
      std::vector<double> mask(static_cast<size_t>(dims.tq * dims.tk), 0.0);
      for (int64_t i = 0; i < dims.tq; ++i)
        for (int64_t j = i + dims.causal_shift() + 1; j < dims.tk; ++j)
          mask[static_cast<size_t>(i * dims.tk + j)] = -std::numeric_limits<double>::infinity();
      Value m;
      m.tensor = Tensor::from_values({dims.tq, dims.tk}, mask, q.dtype);
      scores = step(id, "Add", {scores, initializer(m, fmt::format("causal_mask_{}x{}", dims.tq, dims.tk))});
    }
    std::string probs = step(id, "Softmax", {scores});
    set_int(*last_node(), "axis", -1);
    add(id, "MatMul", {probs, in[2]});
  }

  void matmul(int id, const Node& n, const std::vector<std::string>& in) {
    const Attrs& a = n.attrs;
    const Value& lhs = values_[n.inputs[0]];
    const Value& rhs = values_[n.inputs[1]];
    const Shape& ls = g_.node(n.inputs[0]).type.shape;
    const Shape& rs = g_.node(n.inputs[1]).type.shape;
    if (!lhs.constant && rhs.constant && ls.size() == 2 && rs.size() == 2) {  // Linear: Gemm, bias fused later
      onnx::NodeProto& node = add(id, "Gemm", in);
      if (a.trans_a) set_int(node, "transA", 1);
      if (a.trans_b) set_int(node, "transB", 1);
      fusable_[id] = {gp_.node_size() - 1, n.type.shape[1]};
      return;
    }
    auto operand = [&](const std::string& name, size_t rank, bool trans) {
      if (!trans) return name;
      std::vector<int64_t> perm(rank);
      for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(i);
      std::swap(perm[rank - 1], perm[rank - 2]);
      std::string out = step(id, "Transpose", {name});
      set_ints(*last_node(), "perm", perm);
      return out;
    };
    add(id, "MatMul", {operand(in[0], ls.size(), a.trans_a), operand(in[1], rs.size(), a.trans_b)});
  }

  // add(Gemm/Conv output, constant bias) -> the bias becomes the node's third input.
  bool fuse_bias(int id, const Node& n) {
    int dyn = n.inputs[0], bias = n.inputs[1];
    if (values_[dyn].constant) std::swap(dyn, bias);
    if (values_[dyn].constant || !values_[bias].constant || uses_[dyn] != 1) return false;
    auto it = fusable_.find(dyn);
    if (it == fusable_.end()) return false;
    const Shape& bs = values_[bias].tensor.shape();
    const Shape& out = n.type.shape;
    int64_t channels = it->second.channels;
    bool gemm = gp_.node(it->second.node_index).op_type() == "Gemm";
    bool fits = numel(bs) == channels && out == g_.node(dyn).type.shape &&
                (gemm ? (bs == Shape{channels} || bs == Shape{1, channels})
                      : (bs == Shape{1, channels, 1, 1} || bs == Shape{channels, 1, 1}));
    if (!fits) return false;
    Value reshaped = values_[bias];
    reshaped.tensor = contiguous(reshaped.tensor, backend_registry().reference()).reshape({channels});
    gp_.mutable_node(it->second.node_index)->add_input(initializer(reshaped, fmt::format("const_{}", bias)));
    values_[id] = values_[dyn];
    fusable_.erase(it);
    return true;
  }

  void reshape(int id, const Node& n, const std::string& x) {
    const Shape& in = g_.node(n.inputs[0]).type.shape;
    Shape target = n.attrs.shape;
    bool batch_major = values_[id].batch_major;
    if (batch_major && in.size() >= 2 && target == Shape{in[0], numel(in) / in[0]}) {
      set_int(add(id, "Flatten", {x}), "axis", 1);
      return;
    }
    // (N, T, ..., C) -> (N*T*..., C) and back, as nn::Linear runs a product over leading dims: -1
    // in the batch's place keeps it dynamic; the value remembers the factor to split it again.
    if (batch_major && !target.empty() && target[0] != in[0] && target[0] % in[0] == 0) {
      values_[id].batch_major = false;
      values_[id].merged = target[0] / in[0];
      target[0] = -1;
      add(id, "Reshape", {x, int_const(id, "shape", target)});
      return;
    }
    const int64_t merged = values_[n.inputs[0]].merged;
    if (merged > 0 && !target.empty() && target[0] * merged == in[0]) {
      values_[id].batch_major = true;
      values_[id].merged = 0;
      target[0] = -1;
      add(id, "Reshape", {x, int_const(id, "shape", target)});
      return;
    }
    if (batch_major) {
      if (target.empty() || target[0] != in[0])
        return unsupported(id, fmt::format("reshape {} -> {} (it moves the batch axis; export keeps batch dynamic)",
                                           shape_str(in), shape_str(target)));
      target[0] = 0;  // ONNX Reshape: 0 copies the input's dim, here the batch
    }
    add(id, "Reshape", {x, int_const(id, "shape", target)});
  }

  // --- building blocks ---

  onnx::NodeProto& add(int id, const std::string& type, const std::vector<std::string>& inputs) {
    values_[id].name = fmt::format("v{}", id);
    return node(type, inputs, values_[id].name);
  }

  // An intermediate node of a multi-node translation; returns its output name.
  std::string step(int id, const std::string& type, const std::vector<std::string>& inputs) {
    std::string out = fmt::format("v{}_{}", id, ++counter_);
    node(type, inputs, out);
    return out;
  }

  onnx::NodeProto& node(const std::string& type, const std::vector<std::string>& inputs, const std::string& output) {
    onnx::NodeProto* node = gp_.add_node();
    node->set_op_type(type);
    node->set_name(fmt::format("{}_{}", type, gp_.node_size()));
    for (const std::string& i : inputs) node->add_input(i);
    node->add_output(output);
    return *node;
  }

  onnx::NodeProto* last_node() { return gp_.mutable_node(gp_.node_size() - 1); }

  std::string input(int id) {
    const Value& v = values_[id];
    return v.constant ? initializer(v, fmt::format("const_{}", id)) : v.name;
  }

  // An initializer for a constant: named by its param when it has one (a second shape of the
  // same param gets a suffix), else `fallback`. Emitted once per name.
  std::string initializer(const Value& v, const std::string& fallback) {
    std::string name = v.param.empty() ? fallback : v.param;
    for (int k = 1; emitted_.count(name) && emitted_[name] != v.tensor.shape(); ++k)
      name = fmt::format("{}_{}", v.param.empty() ? fallback : v.param, k);
    if (!emitted_.count(name)) {
      emitted_[name] = v.tensor.shape();
      *gp_.add_initializer() = tensor_to_proto(name, v.tensor);
    }
    return name;
  }

  std::string int_const(int id, const std::string& what, const std::vector<int64_t>& values) {
    std::vector<double> d(values.begin(), values.end());
    Value v;
    v.tensor = Tensor::from_values({static_cast<int64_t>(values.size())}, d, DType::i64);
    return initializer(v, fmt::format("v{}_{}", id, what));
  }

  std::string scalar(double value, DType dtype) {
    Value v;
    v.tensor = Tensor::from_values({}, {value}, dtype);
    return initializer(v, fmt::format("scalar_{}", ++counter_));
  }

  void unsupported(int id, const std::string& what) {
    unsupported_.push_back(fmt::format("{} (node %{})", what, id));
  }

  void rename(const std::string& from, const std::string& to) {
    for (onnx::NodeProto& node : *gp_.mutable_node()) {
      for (std::string& s : *node.mutable_input()) if (s == from) s = to;
      for (std::string& s : *node.mutable_output()) if (s == from) s = to;
    }
  }

  static void describe(onnx::ValueInfoProto& info, const std::string& name, const TensorType& type, bool batch) {
    info.set_name(name);
    onnx::TypeProto_Tensor* t = info.mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx_type_of(type.dtype));
    onnx::TensorShapeProto* shape = t->mutable_shape();
    for (size_t i = 0; i < type.shape.size(); ++i) {
      if (i == 0 && batch) shape->add_dim()->set_dim_param("batch");
      else shape->add_dim()->set_dim_value(type.shape[i]);
    }
  }

  const Graph& g_;
  onnx::GraphProto& gp_;
  std::map<std::string, Tensor> weights_;
  std::vector<Value> values_;
  std::vector<int> uses_;
  std::map<int, Fusable> fusable_;
  std::map<std::string, Shape> emitted_;
  std::vector<std::string> unsupported_;
  int counter_ = 0;
};

}  // namespace

std::string onnx_model_bytes(const nn::Model& model, const NamedTensors& weights) {
  Graph g;
  Shape x_shape{kProbeBatch};
  for (int64_t d : model.input_shape()) x_shape.push_back(d);
  Sym x = g.input("x", {x_shape, DType::f32});
  std::map<std::string, Sym> leaves = nn::declare_params(g, model.param_infos());
  nn::ForwardContext ctx(g, /*training*/ false, [&](const std::string& name) { return leaves.at(name); });
  Sym logits = model.forward(x, ctx);
  Sym probabilities = softmax(logits, -1);

  onnx::ModelProto m;
  m.set_ir_version(kOnnxIrVersion);
  m.set_producer_name("gpuml");
  m.set_producer_version(GPUML_VERSION);
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto* graph = m.mutable_graph();
  graph->set_name("gpuml");
  Exporter(g, weights, *graph).run({{logits.id, "logits"}, {probabilities.id, "probabilities"}});
  std::string bytes;
  GPUML_CHECK_KIND(ErrorKind::Internal, m.SerializeToString(&bytes), "ONNX export: serialization failed");
  return bytes;
}

void export_onnx(const nn::Model& model, const NamedTensors& weights, const std::filesystem::path& path) {
  write_file_atomically(path, onnx_model_bytes(model, weights));
}

}  // namespace gpuml::interop
