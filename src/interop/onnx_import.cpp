#include "interop/onnx_import.h"

#include <fmt/ranges.h>

#include <climits>
#include <set>

#include "backend/dispatch.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "interop/onnx_graph_view.h"

namespace gpuml::interop {
namespace {

namespace fs = std::filesystem;

// Operator types the importer knows (default domain). Everything else is listed up front.
const std::set<std::string>& known_ops() {
  static const std::set<std::string> ops = {
      "Gemm", "MatMul", "Add", "Conv", "MaxPool", "AveragePool", "BatchNormalization", "LayerNormalization",
      "Relu", "Tanh", "Sigmoid", "Gelu", "Erf", "Div", "Mul", "Flatten", "Reshape", "Gather", "Dropout", "Pad",
      "Identity", "Softmax", "LogSoftmax", "Constant", "Transpose", "Concat", "Cast"};
  return ops;
}

bool default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

void check_unsupported_ops(const onnx::GraphProto& g, const std::string& what) {
  std::map<std::string, std::vector<std::string>> bad;
  for (const onnx::NodeProto& n : g.node()) {
    std::string type = default_domain(n.domain()) ? n.op_type() : n.domain() + "." + n.op_type();
    if (!default_domain(n.domain()) || !known_ops().count(n.op_type())) bad[type].push_back(node_label(n));
  }
  if (bad.empty()) return;
  std::vector<std::string> parts;
  for (const auto& [type, nodes] : bad)
    parts.push_back(fmt::format("{} ({} node{}: {})", type, nodes.size(), nodes.size() == 1 ? "" : "s",
                                fmt::join(nodes.begin(), nodes.begin() + std::min<size_t>(nodes.size(), 3), ", ")));
  GPUML_FAIL(ErrorKind::Unsupported, "{}: unsupported ONNX operators: {}. gpuml imports {}", what,
             fmt::join(parts, "; "), fmt::join(known_ops(), ", "));
}

Tensor constant_attribute(const onnx::NodeProto& n, const TensorSource& source) {
  GPUML_CHECK(n.attribute_size() == 1, "{}: a Constant needs exactly one value attribute", node_label(n));
  const onnx::AttributeProto& a = n.attribute(0);
  std::string what = node_label(n);
  if (a.name() == "value" && a.type() == onnx::AttributeProto_AttributeType_TENSOR)
    return tensor_from_proto(a.t(), source, what);
  if (a.name() == "value_float" && a.type() == onnx::AttributeProto_AttributeType_FLOAT)
    return Tensor::from_values({}, {a.f()}, DType::f32);
  if (a.name() == "value_int" && a.type() == onnx::AttributeProto_AttributeType_INT)
    return Tensor::from_values({}, {double(a.i())}, DType::i64);
  if (a.name() == "value_floats" && a.type() == onnx::AttributeProto_AttributeType_FLOATS)
    return Tensor::from_values({a.floats_size()}, std::vector<double>(a.floats().begin(), a.floats().end()), DType::f32);
  if (a.name() == "value_ints" && a.type() == onnx::AttributeProto_AttributeType_INTS)
    return Tensor::from_values({a.ints_size()}, std::vector<double>(a.ints().begin(), a.ints().end()), DType::i64);
  GPUML_FAIL(ErrorKind::Unsupported, "{}: Constant attribute '{}' ({}) is not supported", what, a.name(),
             onnx::AttributeProto_AttributeType_Name(a.type()));
}

std::vector<int64_t> int_values(const Tensor& t, const std::string& what) {
  GPUML_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32, "{}: expected an integer tensor, got {}", what,
              t.dtype());
  GPUML_CHECK(t.ndim() <= 1, "{}: expected a 1-d tensor, got {}", what, shape_str(t.shape()));
  std::vector<int64_t> out;
  for (double v : t.to_doubles()) out.push_back(static_cast<int64_t>(v));
  return out;
}

// Reshape/Transpose/Concat/Cast/Identity of constants, computed on the reference backend.
Tensor fold(const onnx::NodeProto& n, const std::vector<const Tensor*>& in) {
  std::string what = node_label(n);
  Backend& ref = backend_registry().reference();
  const std::string& type = n.op_type();
  GPUML_CHECK(!in.empty() && in[0], "{}: missing input", what);
  const Tensor& x = *in[0];
  if (type == "Identity") return x;
  if (type == "Cast") {
    Attrs a;
    a.dtype = dtype_from_onnx(static_cast<int>(attr_int(n, "to", 0)), what);
    return run_op(ref, OpId::cast, {x}, a);
  }
  if (type == "Transpose") {
    std::vector<int64_t> perm = attr_ints(n, "perm", {});
    if (perm.empty())
      for (int64_t i = x.ndim() - 1; i >= 0; --i) perm.push_back(i);
    Attrs a;
    a.axes = perm;
    return run_op(ref, OpId::permute, {x}, a);
  }
  if (type == "Concat") {
    std::vector<Tensor> parts;
    for (const Tensor* t : in) parts.push_back(*t);
    Attrs a;
    a.axis = attr_int(n, "axis", 0);
    return run_op(ref, OpId::concat, parts, a);
  }
  if (type == "Reshape") {
    GPUML_CHECK(in.size() == 2 && in[1], "{}: needs a constant shape", what);
    std::vector<int64_t> shape = int_values(*in[1], what + " shape");
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && attr_int(n, "allowzero", 0) == 0) {
        GPUML_CHECK(i < static_cast<size_t>(x.ndim()), "{}: 0 at axis {} beyond the input's rank", what, i);
        shape[i] = x.dim(static_cast<int>(i));
      }
      if (shape[i] == -1) {
        GPUML_CHECK(infer < 0, "{}: more than one -1 in the shape", what);
        infer = static_cast<int64_t>(i);
      } else {
        GPUML_CHECK(shape[i] >= 0, "{}: invalid shape entry {}", what, shape[i]);
        known *= std::max<int64_t>(shape[i], 1);
      }
    }
    if (infer >= 0) shape[infer] = known ? x.numel() / known : 0;
    GPUML_CHECK_SHAPE(numel(shape) == x.numel(), "{}: cannot reshape {} to {}", what, shape_str(x.shape()),
                      shape_str(shape));
    return contiguous(x, ref).reshape(shape);
  }
  GPUML_FAIL(ErrorKind::Unsupported, "{}: cannot compute this operator on constants", what);
}

void analyse_inputs_outputs(OnnxGraphView& v, const ImportLimits& limits) {
  const onnx::GraphProto& g = *v.graph;
  std::vector<const onnx::ValueInfoProto*> runtime;
  for (const onnx::ValueInfoProto& in : g.input())
    if (!v.constants.count(in.name())) runtime.push_back(&in);  // older IRs list initializers as inputs
  GPUML_CHECK(runtime.size() == 1, "{}: gpuml imports models with exactly one input, this one has {}", v.what,
              runtime.size());
  const onnx::ValueInfoProto& in = *runtime[0];
  GPUML_CHECK(in.type().has_tensor_type() && in.type().tensor_type().has_shape(),
              "{}: input '{}' must be a tensor with a known shape", v.what, in.name());
  const auto& t = in.type().tensor_type();
  GPUML_CHECK_KIND(ErrorKind::DType, t.elem_type() == onnx_type_of(DType::f32),
                   "{}: input '{}' must be float32, it is {}", v.what, in.name(),
                   dtype_from_onnx(t.elem_type(), v.what));
  const auto& dims = t.shape().dim();
  GPUML_CHECK(dims.size() >= 2, "{}: input '{}' needs a batch dim and per-sample dims, it has rank {}", v.what,
              in.name(), dims.size());
  uint64_t count = 1;
  for (int i = 1; i < dims.size(); ++i) {
    GPUML_CHECK(dims[i].has_dim_value() && dims[i].dim_value() > 0 && dims[i].dim_value() <= INT32_MAX,
                "{}: input '{}' dim {} must be a fixed positive size, it is '{}'", v.what, in.name(), i,
                dims[i].has_dim_value() ? std::to_string(dims[i].dim_value()) : dims[i].dim_param());
    count *= static_cast<uint64_t>(dims[i].dim_value());
    GPUML_CHECK(count * 4 <= limits.max_tensor_bytes, "{}: input '{}' is too large per sample", v.what, in.name());
    v.sample_shape.push_back(dims[i].dim_value());
  }
  v.input = in.name();
  GPUML_CHECK(g.output_size() >= 1, "{}: the graph has no output", v.what);
  v.output = g.output(0).name();
  for (const onnx::ValueInfoProto& out : g.output())
    if (out.name() == "logits") v.output = out.name();
}

}  // namespace

ImportedModel import_onnx_bytes(std::string_view bytes, const fs::path& model_dir, const std::string& what,
                                const ImportLimits& limits) {
  GPUML_CHECK(bytes.size() <= limits.max_file_bytes && bytes.size() <= INT_MAX,
              "{}: {} bytes exceed the ONNX (protobuf) size limit of {}", what, bytes.size(), limits.max_file_bytes);
  onnx::ModelProto m;
  GPUML_CHECK(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
              "{}: not a valid ONNX model (the protobuf does not parse: truncated, corrupt or not ONNX)", what);
  GPUML_CHECK(m.has_graph() && m.graph().node_size() > 0, "{}: the ONNX model has no graph nodes", what);
  GPUML_CHECK(m.ir_version() >= 3 && m.ir_version() <= 10, "{}: unsupported ONNX IR version {}", what,
              m.ir_version());
  int64_t opset = -1;
  for (const auto& o : m.opset_import())
    if (default_domain(o.domain())) opset = o.version();
  GPUML_CHECK_KIND(ErrorKind::Unsupported, opset >= 11 && opset <= 18,
                   "{}: default-domain opset {} is not supported (gpuml imports opset 11 to 18)", what, opset);
  const onnx::GraphProto& g = m.graph();
  GPUML_CHECK(g.node_size() <= limits.max_nodes, "{}: {} nodes exceed the limit of {}", what, g.node_size(),
              limits.max_nodes);
  check_unsupported_ops(g, what);

  OnnxGraphView v;
  v.graph = &g;
  v.what = what;
  TensorSource source{model_dir, limits.max_tensor_bytes};
  for (const onnx::TensorProto& t : g.initializer()) {
    GPUML_CHECK(!t.name().empty() && !v.constants.count(t.name()), "{}: initializer name '{}' is empty or repeated",
                what, t.name());
    v.constants.emplace(t.name(), tensor_from_proto(t, source, fmt::format("{}: initializer '{}'", what, t.name())));
  }
  analyse_inputs_outputs(v, limits);

  // Every input defined before use; constants folded; which node produces what.
  std::set<std::string> defined = {v.input};
  std::map<std::string, int> producer;
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& n = g.node(i);
    bool all_constant = true;
    std::vector<const Tensor*> in;
    for (const std::string& name : n.input()) {
      if (name.empty()) {  // an omitted optional input
        in.push_back(nullptr);
        continue;
      }
      GPUML_CHECK(defined.count(name) || v.constants.count(name),
                  "{}: {} uses '{}', which no earlier node, initializer or input defines", what, node_label(n), name);
      auto c = v.constants.find(name);
      all_constant &= c != v.constants.end();
      in.push_back(c == v.constants.end() ? nullptr : &c->second);
    }
    GPUML_CHECK(n.output_size() >= 1, "{}: {} has no output", what, node_label(n));
    for (const std::string& out : n.output())
      GPUML_CHECK(out.empty() || (!defined.count(out) && !v.constants.count(out)),
                  "{}: {} redefines '{}'", what, node_label(n), out);
    if (n.op_type() == "Constant") {
      v.constants.emplace(n.output(0), constant_attribute(n, source));
      continue;
    }
    static const std::set<std::string> foldable = {"Identity", "Cast", "Transpose", "Concat", "Reshape"};
    if (all_constant && foldable.count(n.op_type())) {
      v.constants.emplace(n.output(0), fold(n, in));
      continue;
    }
    for (const std::string& out : n.output())
      if (!out.empty()) defined.insert(out), producer[out] = i;
  }
  GPUML_CHECK(defined.count(v.output), "{}: output '{}' is not computed from the input '{}'", what, v.output,
              v.input);

  // The nodes the output depends on, in graph order.
  std::set<std::string> needed = {v.output};
  std::vector<bool> on_path(static_cast<size_t>(g.node_size()), false);
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const onnx::NodeProto& n = g.node(i);
    auto p = producer.find(n.output(0));
    if (p == producer.end() || p->second != i) continue;
    bool wanted = false;
    for (const std::string& out : n.output()) wanted |= needed.count(out) > 0;
    if (!wanted) continue;
    on_path[i] = true;
    for (const std::string& name : n.input())
      if (!name.empty() && !v.constants.count(name)) needed.insert(name);
  }
  for (int i = 0; i < g.node_size(); ++i)
    if (on_path[i]) v.path.push_back(i);

  ImportedModel imported = layers_from_graph(v);
  std::string producer_name = m.producer_name().empty() ? "unknown producer" : m.producer_name();
  imported.description = fmt::format("{} {}, opset {}: {} nodes -> {} layers", producer_name, m.producer_version(),
                                     opset, g.node_size(), imported.model.root().size());
  return imported;
}

ImportedModel import_onnx_file(const fs::path& path, const ImportLimits& limits) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: cannot read: {}", path.string(), ec.message());
  GPUML_CHECK(size <= limits.max_file_bytes, "{}: {} bytes exceed the ONNX (protobuf) size limit of {}",
              path.string(), size, limits.max_file_bytes);
  std::string bytes = read_file_bytes(path);
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  return import_onnx_bytes(bytes, dir, path.string(), limits);
}

}  // namespace gpuml::interop
