#include "graph/graph.h"

#include "core/error.h"

namespace gpuml {

Sym Graph::add_leaf(NodeRole role, const std::string& name, const TensorType& type) {
  GPUML_CHECK(!name.empty(), "graph: inputs and params need a name");
  GPUML_CHECK(find_leaf(name) < 0, "graph: the name '{}' is used twice", name);
  for (int64_t d : type.shape)
    GPUML_CHECK_SHAPE(d >= 0, "graph: '{}' has a negative dim in {}", name, shape_str(type.shape));
  Node n;
  n.role = role;
  n.type = type;
  n.name = name;
  nodes_.push_back(std::move(n));
  return Sym(*this, size() - 1);
}

Sym Graph::input(const std::string& name, const TensorType& type) { return add_leaf(NodeRole::Input, name, type); }
Sym Graph::param(const std::string& name, const TensorType& type) { return add_leaf(NodeRole::Param, name, type); }

int Graph::emit(OpId op, const std::vector<int>& inputs, const Attrs& attrs) {
  std::vector<TensorType> types;
  types.reserve(inputs.size());
  for (int id : inputs) {
    GPUML_CHECK(id >= 0 && id < size(), "{}: input value %{} is not in this graph (size {})", op_name(op), id,
                size());
    types.push_back(nodes_[id].type);
  }
  std::vector<TensorType> outputs;
  try {
    outputs = infer_types(op, types, attrs);
  } catch (const Error& e) {
    // Re-throw with the node's place in the graph, keeping the kind so callers can react.
    std::vector<std::string> shapes;
    for (const TensorType& t : types) shapes.push_back(fmt::format("{} {}", shape_str(t.shape), t.dtype));
    throw_error(e.kind(), __FILE__, __LINE__,
                fmt::format("building node %{} = {}({}): {}", size(), op_name(op), fmt::join(shapes, ", "),
                            e.message()));
  }
  const int id = size();
  Node n;
  n.role = NodeRole::Op;
  n.op = op;
  n.attrs = attrs;
  n.inputs = inputs;
  n.type = outputs[0];
  nodes_.push_back(std::move(n));
  for (size_t i = 1; i < outputs.size(); ++i) {
    Node out;
    out.role = NodeRole::OpOutput;
    out.op = op;
    out.inputs = {id};
    out.type = outputs[i];
    out.output_index = static_cast<int>(i);
    nodes_.push_back(std::move(out));
  }
  return id;
}

int Graph::output_count(int id) const {
  const Node& n = node(id);
  return n.role == NodeRole::Op ? op_info(n.op).outputs : 1;
}

const TensorType& Graph::type_of(int value) const { return node(value).type; }

const Node& Graph::node(int id) const {
  GPUML_CHECK(id >= 0 && id < size(), "graph: value %{} out of range (size {})", id, size());
  return nodes_[id];
}

int Graph::find_leaf(const std::string& name) const {
  for (int i = 0; i < size(); ++i)
    if ((nodes_[i].role == NodeRole::Input || nodes_[i].role == NodeRole::Param) && nodes_[i].name == name) return i;
  return -1;
}

std::string Graph::to_string() const {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    const Node& n = nodes_[i];
    std::string what;
    if (n.role == NodeRole::OpOutput) {
      what = fmt::format("output {} of %{}", n.output_index, n.inputs[0]);
    } else if (n.role == NodeRole::Op) {
      std::vector<std::string> ins;
      for (int id : n.inputs) ins.push_back(fmt::format("%{}", id));
      what = fmt::format("{}({})", op_name(n.op), fmt::join(ins, ", "));
    } else {
      what = fmt::format("{} '{}'", n.role == NodeRole::Input ? "input" : "param", n.name);
    }
    out += fmt::format("%{} = {} {} {}\n", i, what, shape_str(n.type.shape), n.type.dtype);
  }
  return out;
}

}  // namespace gpuml
