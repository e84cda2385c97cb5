#include "graph/planner.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "graph/arena.h"
#include "graph/fusion.h"
#include "graph/placement.h"
#include "ops/type_rules.h"

namespace gpuml {

namespace {

Tensor layout_tensor(const TensorType& type, const Strides& strides) {
  return Tensor(nullptr, type.shape, strides, 0, type.dtype);
}

// Emits the plan's steps and values in graph order: placement (graph/placement.h) says where each
// kernel runs, the fusion passes (graph/fusion.h) which nodes run as one fused step, and this
// class makes the transfers, contiguous copies and views around them; arena packing
// (graph/arena.h) then gives the buffers their memory.
class Planner {
 public:
  Planner(const Graph& graph, const PlanOptions& options)
      : graph_(graph), options_(options), placement_(options) {}

  Plan run(const std::vector<Sym>& outputs);

 private:
  int add_value(PlanValue v) {
    plan_.values.push_back(std::move(v));
    return static_cast<int>(plan_.values.size()) - 1;
  }
  int add_step(PlanStep s) {
    plan_.steps.push_back(std::move(s));
    return static_cast<int>(plan_.steps.size()) - 1;
  }
  bool is_contiguous(int value) const {
    const PlanValue& v = plan_.values[value];
    return layout_tensor(v.type, v.strides).is_contiguous();
  }
  void plan_bgrad(const BgradPair& pair);
  void plan_fused(int id, const FusedStep& f);
  int new_buffer(const TensorType& type, Backend& backend, int graph_node);
  int emit_kernel(OpId op, const Attrs& attrs, std::vector<int> inputs, Backend& backend, int graph_node);
  int emit_placed(OpId op, Attrs attrs, std::vector<int> inputs, Backend& backend, int graph_node);
  int contiguous_copy(int value, Backend& backend);
  int on_backend(int value, Backend& backend);
  int emit_view(OpId op, const Attrs& attrs, int input, int graph_node);
  int replay_on(int value, Backend& backend);
  void plan_node(int id);

  const Graph& graph_;
  const PlanOptions& options_;
  Placement placement_;
  FusionPlan fusions_;
  Plan plan_;
  std::vector<int> value_of_;                      // graph id -> plan value id
  std::map<std::pair<int, Backend*>, int> homed_;  // (value, backend) -> the value re-homed there
};

int Planner::new_buffer(const TensorType& type, Backend& backend, int graph_node) {
  PlanValue v;
  v.type = type;
  v.home = ValueHome::Arena;
  v.backend = &backend;
  v.graph_node = graph_node;
  v.strides = contiguous_strides(type.shape);
  return add_value(std::move(v));
}

// A kernel step and a fresh buffer per output; returns output 0's value (the others follow it).
int Planner::emit_kernel(OpId op, const Attrs& attrs, std::vector<int> inputs, Backend& backend, int graph_node) {
  std::vector<TensorType> out_types;
  if (graph_node >= 0) {
    // The step computes graph_node's values: output k is value graph_node + k (graph.h).
    for (int k = 0; k < op_info(op).outputs; ++k) out_types.push_back(graph_.type_of(graph_node + k));
  } else {
    std::vector<TensorType> types;
    for (int in : inputs) types.push_back(plan_.values[in].type);
    out_types = infer_types(op, types, attrs);
  }
  PlanStep s;
  s.kind = StepKind::Kernel;
  s.op = op;
  s.attrs = attrs;
  s.inputs = std::move(inputs);
  for (size_t k = 0; k < out_types.size(); ++k) {
    const int v = new_buffer(out_types[k], backend, graph_node < 0 ? -1 : graph_node + static_cast<int>(k));
    if (k == 0) s.output = v;
  }
  s.output_count = static_cast<int>(out_types.size());
  s.backend = &backend;
  add_step(s);
  return s.output;
}

int Planner::contiguous_copy(int value, Backend& backend) {
  const OpQuery copy = copy_query(plan_.values[value].type);
  Backend& runner = backend.supports(copy) ? backend : placement_.place(copy);
  int copied = emit_kernel(OpId::copy, {}, {on_backend(value, runner)}, runner, -1);
  return on_backend(copied, backend);
}

// The value as seen from `backend`: itself, or an explicit Transfer step's result.
int Planner::on_backend(int value, Backend& backend) {
  PlanValue& v = plan_.values[value];
  if (v.backend == &backend) return value;
  auto key = std::make_pair(value, &backend);
  if (auto it = homed_.find(key); it != homed_.end()) return it->second;
  Backend* source = v.backend;
  int result;
  PlanStep s;
  s.kind = StepKind::Transfer;
  s.backend = &backend;
  s.source = source;
  if (source->device() == backend.device()) {
    // Same memory: re-home without copying, keeping the layout.
    PlanValue alias = v;
    alias.home = ValueHome::Alias;
    alias.base = value;
    alias.backend = &backend;
    alias.graph_node = -1;
    alias.name.clear();
    s.inputs = {value};
    result = s.output = add_value(std::move(alias));
  } else {
    int src = value;
    if (!is_contiguous(value)) {
      Backend* copier = placement_.copier_on(source->device(), v.type);
      if (!copier) return homed_[key] = replay_on(value, backend);
      src = emit_kernel(OpId::copy, {}, {on_backend(value, *copier)}, *copier, -1);
      s.source = copier;
    }
    s.inputs = {src};
    result = s.output = new_buffer(plan_.values[src].type, backend, -1);
  }
  add_step(s);
  homed_[key] = result;
  return result;
}

int Planner::emit_view(OpId op, const Attrs& attrs, int input, int graph_node) {
  const PlanValue& base = plan_.values[input];
  Tensor layout = apply_view(layout_tensor(base.type, base.strides), op, attrs);
  PlanValue v;
  v.type = {layout.shape(), base.type.dtype};
  v.home = ValueHome::Alias;
  v.backend = base.backend;
  v.graph_node = graph_node;
  v.base = input;
  v.strides = layout.strides();
  PlanStep s;
  s.kind = StepKind::View;
  s.op = op;
  s.attrs = attrs;
  s.inputs = {input};
  s.backend = base.backend;
  s.output = add_value(std::move(v));
  add_step(s);
  return s.output;
}

// A strided value that must cross devices where nothing on its device can copy it: move the
// buffer it views and replay the view on the other side.
int Planner::replay_on(int value, Backend& backend) {
  int maker = -1;
  for (int s = 0; s < static_cast<int>(plan_.steps.size()); ++s)
    if (plan_.steps[s].output == value) maker = s;
  GPUML_CHECK_KIND(ErrorKind::Internal, maker >= 0 && plan_.steps[maker].kind != StepKind::Kernel,
                   "plan_graph: strided value v{} was not made by a view", value);
  PlanStep step = plan_.steps[maker];
  int moved = on_backend(step.inputs[0], backend);
  if (step.kind == StepKind::Transfer) return moved;  // a re-homed alias reads its base's data
  return emit_view(step.op, step.attrs, moved, -1);
}

void Planner::plan_bgrad(const BgradPair& pair) {
  const Node& m = graph_.node(pair.matmul);
  Attrs attrs = m.attrs;
  attrs.axis = pair.axis;
  Backend& backend = placement_.place(bgrad_query(graph_, pair));
  const int weight_grad =
      emit_placed(OpId::matmul_bgrad, attrs, {value_of_[m.inputs[0]], value_of_[m.inputs[1]]}, backend, -1);
  value_of_[pair.matmul] = weight_grad;
  value_of_[pair.sum] = weight_grad + 1;  // the step's output 1
  plan_.values[weight_grad].graph_node = pair.matmul;
  plan_.values[weight_grad + 1].graph_node = pair.sum;
}

// A fused step standing for graph node `id`, its bias made (N,) / (O,) by a view if need be.
void Planner::plan_fused(int id, const FusedStep& f) {
  Backend& backend = placement_.place(fused_query(graph_, id, f));
  int extra = value_of_[f.extra];
  if (f.op != OpId::matmul_dact) {  // the bias as the fused op wants it: (N,) or (O,), a view
    const Shape flat = fused_bias_shape(f.op, graph_.type_of(id));
    if (plan_.values[extra].type.shape != flat) {
      if (!is_contiguous(extra)) extra = contiguous_copy(extra, *plan_.values[extra].backend);
      Attrs to_flat;
      to_flat.shape = flat;
      extra = emit_view(OpId::reshape, to_flat, extra, -1);
    }
  }
  value_of_[id] = emit_placed(f.op, f.attrs, {value_of_[f.a], value_of_[f.b], extra}, backend, id);
}

void Planner::plan_node(int id) {
  if (auto it = fusions_.bgrad_pairs.find(id); it != fusions_.bgrad_pairs.end()) return plan_bgrad(it->second);
  if (fusions_.absorbed[id]) return;
  if (auto it = fusions_.steps.find(id); it != fusions_.steps.end()) return plan_fused(id, it->second);
  const Node& node = graph_.node(id);
  if (node.role == NodeRole::OpOutput) return;  // planned with its Op node (value_of_ set there)
  if (node.role != NodeRole::Op) {
    PlanValue v;
    v.type = node.type;
    v.home = ValueHome::External;
    v.backend = placement_.backends().front();
    v.graph_node = id;
    v.name = node.name;
    v.strides = contiguous_strides(node.type.shape);
    value_of_[id] = add_value(std::move(v));
    return;
  }
  std::vector<int> inputs;
  for (int in : node.inputs) inputs.push_back(value_of_[in]);
  bool view = is_view_op(node.op) && (node.op != OpId::reshape || is_contiguous(inputs[0]));
  if (view) {
    value_of_[id] = emit_view(node.op, node.attrs, inputs[0], id);
    return;
  }
  Backend& backend = placement_.place(query_of_node(graph_, id));
  const int first = emit_placed(node.op, node.attrs, std::move(inputs), backend, id);
  for (int k = 0; k < graph_.output_count(id); ++k) value_of_[id + k] = first + k;
}

// A kernel step on `backend`: inputs moved there (and made contiguous where its kernel needs
// that), the plan-wide attributes (TF32, deterministic) set.
int Planner::emit_placed(OpId op, Attrs attrs, std::vector<int> inputs, Backend& backend, int graph_node) {
  for (int& in : inputs) {
    in = on_backend(in, backend);
    if (!backend.accepts_strided_inputs(op) && !is_contiguous(in)) in = contiguous_copy(in, backend);
  }
  return emit_kernel(op, placement_.step_attrs(op, std::move(attrs)), std::move(inputs), backend, graph_node);
}

Plan Planner::run(const std::vector<Sym>& outputs) {
  std::vector<bool> needed(graph_.size(), false);
  for (const Sym& s : outputs) {
    GPUML_CHECK(s.belongs_to(graph_) && s.id >= 0 && s.id < graph_.size(), "plan_graph: an output is not in this graph");
    needed[s.id] = true;
  }
  for (int id = graph_.size() - 1; id >= 0; --id)
    if (needed[id])
      for (int in : graph_.node(id).inputs) needed[in] = true;
  value_of_.assign(graph_.size(), -1);
  if (options_.fuse) {
    fusions_ = find_fusions(FusionInput(graph_, needed, outputs, placement_));
  } else {
    fusions_.absorbed.assign(graph_.size(), false);
  }
  for (int id = 0; id < graph_.size(); ++id)
    if (needed[id]) plan_node(id);
  for (const Sym& s : outputs) plan_.outputs.push_back(value_of_[s.id]);
  compute_lifetimes(plan_);
  pack_arenas(plan_, placement_, options_.reuse_memory);
  return std::move(plan_);
}

}  // namespace

Plan plan_graph(const Graph& graph, const std::vector<Sym>& outputs, const PlanOptions& options) {
  return Planner(graph, options).run(outputs);
}

bool is_view_op(OpId op) {
  return op == OpId::reshape || op == OpId::permute || op == OpId::slice || op == OpId::broadcast_to;
}

Tensor apply_view(const Tensor& t, OpId op, const Attrs& attrs) {
  switch (op) {
    case OpId::reshape: return t.reshape(attrs.shape);
    case OpId::permute: return t.permute(attrs.axes);
    case OpId::broadcast_to: return t.broadcast_to(attrs.shape);
    case OpId::slice: {
      SliceDims d = normalize_slice(t.shape(), attrs);
      Strides strides = t.strides();
      int64_t offset = t.offset();
      for (int i = 0; i < t.ndim(); ++i) {
        offset += d.start[i] * strides[i];
        strides[i] *= d.step[i];
      }
      return t.view_as(d.size, strides, offset);
    }
    default: GPUML_FAIL(ErrorKind::Internal, "{} is not a view op", op_name(op));
  }
}

int Plan::root_of(int value) const {
  while (values[value].home == ValueHome::Alias) value = values[value].base;
  return value;
}

size_t Plan::peak_bytes() const {
  size_t total = 0;
  for (const ArenaPlan& a : arenas) total += a.peak_bytes;
  return total;
}

size_t Plan::unshared_bytes() const {
  size_t total = 0;
  for (const ArenaPlan& a : arenas) total += a.unshared_bytes;
  return total;
}

std::string Plan::to_string() const {
  std::string out;
  for (size_t s = 0; s < steps.size(); ++s) {
    const PlanStep& st = steps[s];
    const PlanValue& v = values[st.output];
    const char* kind = st.kind == StepKind::Kernel ? "kernel" : st.kind == StepKind::View ? "view" : "transfer";
    std::vector<std::string> ins;
    for (int in : st.inputs) ins.push_back(fmt::format("v{}", in));
    std::string where = v.home == ValueHome::Arena ? fmt::format("arena{}[{}, +{})", v.arena, v.offset, v.bytes)
                                                   : fmt::format("alias of v{}", v.base);
    const std::string outs = st.output_count == 1 ? fmt::format("v{}", st.output)
                                                  : fmt::format("v{}..v{}", st.output, st.output + st.output_count - 1);
    out += fmt::format("{:3} {:8} {} = {}({}) on {}{} {} {} {}\n", s, kind, outs, op_name(st.op),
                       fmt::join(ins, ", "), st.backend->name(), st.source ? fmt::format(" from {}", st.source->name()) : "",
                       shape_str(v.type.shape), v.type.dtype, where);
  }
  for (const ArenaPlan& a : arenas)
    out += fmt::format("arena {}: peak {} bytes ({} without reuse)\n", a.device.str(), a.peak_bytes, a.unshared_bytes);
  return out;
}

}  // namespace gpuml
