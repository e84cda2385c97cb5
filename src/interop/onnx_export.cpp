#include "interop/onnx_export.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
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

// A model of token windows (its input feeds an embedding) exports with a dynamic sequence length:
// the graph is built twice, at two lengths below the context, and every dim that differs between
// the two is an affine function of the length, a * T + b. Shapes in attributes (Reshape targets,
// Slice bounds, Expand shapes, the causal mask) are then computed from the input's runtime T
// (Shape, Mul, Add, Concat, Slice: opset 17), and the rest of the graph is the first build's.
// Tracking the length through the graph, as the batch is, would need a rule per op; comparing two
// builds needs none, and a dim cannot be mistaken for the length by having its value.
struct SeqProbe {
  const Graph* second = nullptr;  // the same model built at length t2 (nullptr: fixed length)
  int64_t t1 = 0, t2 = 0;         // the lengths the two graphs were built at
  int64_t context = 0;            // the longest length the model takes (the causal mask's size)
};

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
  Exporter(const Graph& g, const NamedTensors& weights, onnx::GraphProto& out, SeqProbe seq = {})
      : g_(g), gp_(out), seq_(seq) {
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
      describe(*info, want, g_.node(id).type, v.batch_major, dims2(id));
    }
  }

 private:
  void translate(int id) {
    const Node& n = g_.node(id);
    Value& v = values_[id];
    if (n.role == NodeRole::Input) {
      v.name = n.name;
      v.batch_major = true;
      describe(*gp_.add_input(), n.name, n.type, true, dims2(id));
      if (seq_.second) {
        const Shape& s2 = dims2(id);
        for (size_t i = 0; i < s2.size(); ++i)
          if (s2[i] != n.type.shape[i]) seq_input_ = n.name, seq_axis_ = static_cast<int64_t>(i);
      }
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
    // A constant cut to the sequence length (the position embedding's rows) is computed at run time.
    if (all_constant && dims2(id) != n.type.shape) {
      if (n.op != OpId::slice) return unsupported(id, fmt::format("{} of constants to a shape that follows the "
                                                                    "sequence length", op_name(n.op)));
      all_constant = false;
    }
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
        std::vector<std::string> args = {in[0], seq_ints(id, "starts", a.starts, attrs2(id).starts),
                                         seq_ints(id, "ends", a.ends, attrs2(id).ends), int_const(id, "axes", a.axes)};
        if (!a.steps.empty()) args.push_back(int_const(id, "steps", a.steps));
        add(id, "Slice", args);
        for (int64_t axis : a.axes) values_[id].batch_major &= axis != 0;
        return;
      }
      case OpId::broadcast_to: {
        Shape target = a.shape, target2 = attrs2(id).shape;  // Expand broadcasts: 1 keeps the input's (batch) dim
        if (batch_major && !target.empty()) target[0] = target2[0] = 1;
        add(id, "Expand", {in[0], seq_ints(id, "shape", target, target2)});
        return;
      }
      case OpId::pad: {
        if (attrs2(id).pads != a.pads) return unsupported(id, "pad by an amount that follows the sequence length");
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
    if (n.attrs.causal && (dims2(n.inputs[0]) != q.shape || dims2(n.inputs[1]) != g_.node(n.inputs[1]).type.shape)) {
      scores = step(id, "Add", {scores, seq_causal_mask(id, n, dims, q.dtype)});
    } else if (n.attrs.causal) {
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
    Shape target = n.attrs.shape, target2 = attrs2(id).shape;
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
      target[0] = target2[0] = -1;
      add(id, "Reshape", {x, seq_ints(id, "shape", target, target2)});
      return;
    }
    const int64_t merged = values_[n.inputs[0]].merged;
    if (merged > 0 && !target.empty() && target[0] * merged == in[0]) {
      values_[id].batch_major = true;
      values_[id].merged = 0;
      target[0] = target2[0] = -1;
      add(id, "Reshape", {x, seq_ints(id, "shape", target, target2)});
      return;
    }
    if (batch_major) {
      if (target.empty() || target[0] != in[0])
        return unsupported(id, fmt::format("reshape {} -> {} (it moves the batch axis; export keeps batch dynamic)",
                                           shape_str(in), shape_str(target)));
      target[0] = target2[0] = 0;  // ONNX Reshape: 0 copies the input's dim, here the batch
    }
    add(id, "Reshape", {x, seq_ints(id, "shape", target, target2)});
  }

  // --- the dynamic sequence length (SeqProbe) ---

  // Node id's shape, and attributes, in the second build (the first's when the length is fixed).
  const Shape& dims2(int id) const { return (seq_.second ? *seq_.second : g_).node(id).type.shape; }
  const Attrs& attrs2(int id) const { return (seq_.second ? *seq_.second : g_).node(id).attrs; }

  // The input's length at run time, int64 (1,).
  std::string seq_len() {
    if (seq_len_.empty()) {
      GPUML_CHECK_KIND(ErrorKind::Internal, !seq_input_.empty(), "ONNX export: no input dim follows the length");
      seq_len_ = "seq_len";
      onnx::NodeProto& shape = node("Shape", {seq_input_}, seq_len_);
      set_int(shape, "start", seq_axis_);
      set_int(shape, "end", seq_axis_ + 1);
    }
    return seq_len_;
  }

  // A value that is v1 at length t1 and v2 at t2, at run time: a * T + b, int64 (1,).
  std::string seq_dim(int id, int64_t v1, int64_t v2) {
    const int64_t dt = seq_.t1 - seq_.t2, a = (v1 - v2) / dt, b = v1 - a * seq_.t1;
    if ((v1 - v2) % dt != 0) {
      unsupported(id, fmt::format("a dim that is not a whole multiple of the sequence length ({} at {}, {} at {})", v1,
                                  seq_.t1, v2, seq_.t2));
      return seq_len();
    }
    std::string out = seq_len();
    if (a != 1) out = step(id, "Mul", {out, int_const(id, fmt::format("times_{}", a), {a})});
    if (b != 0) out = step(id, "Add", {out, int_const(id, fmt::format("plus_{}", b), {b})});
    return out;
  }

  // An int64 vector input (a shape, slice bounds): a constant where the two builds agree, else
  // the Concat of its constant runs and its length-dependent entries.
  std::string seq_ints(int id, const std::string& what, const std::vector<int64_t>& v1,
                       const std::vector<int64_t>& v2) {
    if (v1 == v2 || v1.size() != v2.size()) return int_const(id, what, v1);
    std::vector<std::string> parts;
    std::vector<int64_t> run;
    for (size_t i = 0; i < v1.size(); ++i) {
      if (v1[i] == v2[i]) {
        run.push_back(v1[i]);
        continue;
      }
      if (!run.empty()) parts.push_back(int_const(id, fmt::format("{}_{}", what, i), run)), run.clear();
      parts.push_back(seq_dim(id, v1[i], v2[i]));
    }
    if (!run.empty()) parts.push_back(int_const(id, fmt::format("{}_end", what), run));
    if (parts.size() == 1) return parts[0];
    std::string out = step(id, "Concat", parts);
    set_int(*last_node(), "axis", 0);
    return out;
  }

  // The causal mask for a length-dependent attention: the (context, context) mask of 0 and -inf,
  // its first Tq rows and Tk columns taken at run time (bottom-right aligned needs Tk - Tq fixed:
  // the mask's columns are then shifted by it).
  std::string seq_causal_mask(int id, const Node& n, const AttentionDims& dims, DType dtype) {
    const AttentionDims dims2 =
        attention_dims((*seq_.second).node(n.inputs[0]).type.shape, (*seq_.second).node(n.inputs[1]).type.shape,
                       n.attrs);
    const int64_t shift = dims.causal_shift(), size = seq_.context + std::max<int64_t>(shift, 0);
    if (dims2.causal_shift() != shift || shift < 0) {
      unsupported(id, "a causal attention whose key length minus query length follows the sequence length");
      return "";
    }
    std::vector<double> mask(static_cast<size_t>(seq_.context * size), 0.0);
    for (int64_t i = 0; i < seq_.context; ++i)
      for (int64_t j = i + shift + 1; j < size; ++j)
        mask[static_cast<size_t>(i * size + j)] = -std::numeric_limits<double>::infinity();
    Value m;
    m.tensor = Tensor::from_values({seq_.context, size}, mask, dtype);
    const std::string full = initializer(m, fmt::format("causal_mask_{}x{}", seq_.context, size));
    return step(id, "Slice", {full, int_const(id, "mask_starts", {0, 0}),
                              seq_ints(id, "mask_ends", {dims.tq, dims.tk}, {dims2.tq, dims2.tk}),
                              int_const(id, "mask_axes", {0, 1})});
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

  // dims2: the value's shape in the second build; a dim that differs is "seq" (the length) or
  // left unnamed (a function of it).
  void describe(onnx::ValueInfoProto& info, const std::string& name, const TensorType& type, bool batch,
                const Shape& dims2) const {
    info.set_name(name);
    onnx::TypeProto_Tensor* t = info.mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx_type_of(type.dtype));
    onnx::TensorShapeProto* shape = t->mutable_shape();
    for (size_t i = 0; i < type.shape.size(); ++i) {
      if (i == 0 && batch) shape->add_dim()->set_dim_param("batch");
      else if (dims2.size() == type.shape.size() && dims2[i] != type.shape[i]) {
        onnx::TensorShapeProto_Dimension* dim = shape->add_dim();
        if (type.shape[i] == seq_.t1 && dims2[i] == seq_.t2) dim->set_dim_param("seq");
      } else shape->add_dim()->set_dim_value(type.shape[i]);
    }
  }

  const Graph& g_;
  onnx::GraphProto& gp_;
  SeqProbe seq_;
  std::string seq_input_, seq_len_;  // the input whose dim seq_axis_ is the length; its runtime value
  int64_t seq_axis_ = 0;
  std::map<std::string, Tensor> weights_;
  std::vector<Value> values_;
  std::vector<int> uses_;
  std::map<int, Fusable> fusable_;
  std::map<std::string, Shape> emitted_;
  std::vector<std::string> unsupported_;
  int counter_ = 0;
};

}  // namespace

namespace {

struct ForwardGraph {
  Graph g;
  Sym logits, probabilities;
};

// The eval-mode forward at batch kProbeBatch and, for a model of token windows, length t.
std::unique_ptr<ForwardGraph> build_forward(const nn::Model& model, int64_t t) {
  auto f = std::make_unique<ForwardGraph>();
  Shape x_shape{kProbeBatch};
  for (int64_t d : model.input_shape()) x_shape.push_back(d);
  if (t > 0) x_shape[1] = t;
  Sym x = f->g.input("x", {x_shape, DType::f32});
  std::map<std::string, Sym> leaves = nn::declare_params(f->g, model.param_infos());
  nn::ForwardContext ctx(f->g, /*training*/ false, [&](const std::string& name) { return leaves.at(name); });
  // A shorter window than the model's input_shape: the layers take it (a GPT's positions are
  // sliced to it, as `gpuml generate` runs them), Model::forward's check would not.
  f->logits = t > 0 ? model.root().forward(x, ctx, "") : model.forward(x, ctx);
  f->probabilities = softmax(f->logits, -1);
  return f;
}

// A model of token windows: a 1-D input that some embedding reads as its ids (directly or cast).
bool reads_token_windows(const Graph& g, const nn::Model& model) {
  if (model.input_shape().size() != 1) return false;
  for (int id = 0; id < g.size(); ++id) {
    const Node& n = g.node(id);
    if (n.role != NodeRole::Op || n.op != OpId::embedding) continue;
    for (int in : n.inputs) {
      while (g.node(in).role == NodeRole::Op && g.node(in).op == OpId::cast) in = g.node(in).inputs[0];
      if (g.node(in).role == NodeRole::Input) return true;
    }
  }
  return false;
}

}  // namespace

std::string onnx_model_bytes(const nn::Model& model, const NamedTensors& weights) {
  std::unique_ptr<ForwardGraph> first = build_forward(model, 0), second;
  SeqProbe seq;
  const int64_t context = model.input_shape().empty() ? 0 : model.input_shape()[0];
  // Two lengths below the context, so that both builds take the same path (a layer may skip a
  // slice at the full context); a graph whose nodes then differ keeps its length fixed.
  if (context >= 3 && reads_token_windows(first->g, model)) {
    std::unique_ptr<ForwardGraph> a, b;
    try {
      a = build_forward(model, context - 1), b = build_forward(model, context - 2);
    } catch (const Error&) {  // a layer needs the whole window (a Flatten into a Linear): fixed
      a.reset(), b.reset();
    }
    bool same = a && b && a->g.size() == b->g.size() && a->logits.id == b->logits.id;
    for (int id = 0; same && id < a->g.size(); ++id)
      same = a->g.node(id).op == b->g.node(id).op && a->g.node(id).role == b->g.node(id).role &&
             a->g.node(id).inputs == b->g.node(id).inputs;
    if (same) {
      first = std::move(a), second = std::move(b);
      seq = {&second->g, context - 1, context - 2, context};
    }
  }

  onnx::ModelProto m;
  m.set_ir_version(kOnnxIrVersion);
  m.set_producer_name("gpuml");
  m.set_producer_version(GPUML_VERSION);
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto* graph = m.mutable_graph();
  graph->set_name("gpuml");
  Exporter(first->g, weights, *graph, seq)
      .run({{first->logits.id, "logits"}, {first->probabilities.id, "probabilities"}});
  std::string bytes;
  GPUML_CHECK_KIND(ErrorKind::Internal, m.SerializeToString(&bytes), "ONNX export: serialization failed");
  return bytes;
}

void export_onnx(const nn::Model& model, const NamedTensors& weights, const std::filesystem::path& path) {
  write_file_atomically(path, onnx_model_bytes(model, weights));
}

}  // namespace gpuml::interop
