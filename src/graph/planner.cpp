#include "graph/planner.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>

#include "core/error.h"
#include "ops/type_rules.h"

namespace gpuml {

namespace {

constexpr size_t kArenaAlignment = 64;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

Tensor layout_tensor(const TensorType& type, const Strides& strides) {
  return Tensor(nullptr, type.shape, strides, 0, type.dtype);
}

// The ops whose f32 kernels may run on TF32 tensor cores (PlanOptions::allow_tf32).
bool uses_tensor_cores(OpId op) {
  return op == OpId::matmul || op == OpId::matmul_bias_act || op == OpId::matmul_bgrad || op == OpId::matmul_dact ||
         op == OpId::conv2d || op == OpId::conv2d_bias_act ||
         op == OpId::conv2d_backward_data || op == OpId::conv2d_backward_filter;
}

class Planner {
 public:
  Planner(const Graph& graph, const PlanOptions& options) : graph_(graph), options_(options) {
    if (options_.backends.empty()) options_.backends = backend_registry().all();
    GPUML_CHECK(!options_.backends.empty(), "plan_graph: no backends to place ops on");
  }

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
  // A matmul_bias_act or conv2d_bias_act step standing for the chain's last graph node (the add
  // or the activation), or a matmul_dact step standing for an activation's backward.
  struct Fused {
    OpId op;
    int a, b, extra;  // graph ids of its inputs; extra: the bias, which may need a reshape to
                      // (N,) / (O,), or matmul_dact's aux
    Attrs attrs;
  };
  std::optional<Fused> match_bias_add(int add_id, int side, const std::vector<int>& uses) const;
  // Whether graph node `id` (-1: none) is an `op` node.
  bool is_op(int id, OpId op) const {
    return id >= 0 && graph_.node(id).role == NodeRole::Op && graph_.node(id).op == op;
  }
  // A weight-gradient matmul and the bias-gradient row sum of the same gradient g, run as one
  // matmul_bgrad step that both read through views.
  struct BgradPair {
    int matmul, sum, axis;  // graph ids; axis: which matmul input is g
  };
  void find_bgrad_pairs(const std::vector<bool>& needed);
  void find_dact(const std::vector<bool>& needed, const std::vector<int>& uses);
  void plan_bgrad(const BgradPair& pair);
  Backend* first_supporting(OpId op, DType dtype) const;
  // Whether `fused` runs on the backend that would run the unfused `op`: fusing must not move work
  // to another backend.
  bool fuses_in_place(OpId fused, OpId op, DType dtype) const {
    Backend* b = first_supporting(fused, dtype);
    return b != nullptr && b == first_supporting(op, dtype);
  }
  // Whether graph node `id` is a matmul of two matrices (the only kind the epilogues take).
  bool is_2d_matmul(int id) const {
    return is_op(id, OpId::matmul) && graph_.type_of(graph_.node(id).inputs[0]).shape.size() == 2 &&
           graph_.type_of(graph_.node(id).inputs[1]).shape.size() == 2;
  }
  Backend& place(OpId op, DType dtype) const;
  void find_fusions(const std::vector<bool>& needed, const std::vector<Sym>& outputs);
  int new_buffer(const TensorType& type, Backend& backend, int graph_node);
  int emit_kernel(OpId op, const Attrs& attrs, std::vector<int> inputs, Backend& backend, int graph_node);
  int emit_placed(OpId op, Attrs attrs, std::vector<int> inputs, Backend& backend, int graph_node);
  int contiguous_copy(int value, Backend& backend);
  int on_backend(int value, Backend& backend);
  int emit_view(OpId op, const Attrs& attrs, int input, int graph_node);
  int replay_on(int value, Backend& backend);
  void plan_node(int id);
  void compute_lifetimes();
  void assign_offsets();

  const Graph& graph_;
  PlanOptions options_;  // backends filled in
  std::map<int, Fused> fused_;   // graph id of the fused chain's last node -> the fused step
  std::map<int, BgradPair> bgrad_;  // graph id of the pair's first node -> the pair
  std::vector<bool> absorbed_;   // graph ids computed inside a fused step, not planned themselves
  Plan plan_;
  std::vector<int> value_of_;                   // graph id -> plan value id
  std::map<std::pair<int, Backend*>, int> homed_;  // (value, backend) -> the value re-homed there
};

Backend* Planner::first_supporting(OpId op, DType dtype) const {
  for (Backend* b : options_.backends)
    if (b->supports(op, dtype)) return b;
  return nullptr;
}

Backend& Planner::place(OpId op, DType dtype) const {
  if (Backend* b = first_supporting(op, dtype)) return *b;
  std::vector<std::string_view> names;
  for (Backend* b : options_.backends) names.push_back(b->name());
  GPUML_FAIL(ErrorKind::Unsupported, "plan_graph: no backend among [{}] has a {} kernel for {}", fmt::join(names, ", "),
             op_name(op), dtype);
}

int Planner::new_buffer(const TensorType& type, Backend& backend, int graph_node) {
  PlanValue v;
  v.type = type;
  v.home = ValueHome::Arena;
  v.backend = &backend;
  v.graph_node = graph_node;
  v.strides = contiguous_strides(type.shape);
  return add_value(std::move(v));
}

int Planner::emit_kernel(OpId op, const Attrs& attrs, std::vector<int> inputs, Backend& backend, int graph_node) {
  std::vector<TensorType> types;
  for (int in : inputs) types.push_back(plan_.values[in].type);
  TensorType out_type = graph_node >= 0 ? graph_.type_of(graph_node) : infer_type(op, types, attrs);
  PlanStep s;
  s.kind = StepKind::Kernel;
  s.op = op;
  s.attrs = attrs;
  s.inputs = std::move(inputs);
  s.output = new_buffer(out_type, backend, graph_node);
  s.backend = &backend;
  add_step(s);
  return s.output;
}

int Planner::contiguous_copy(int value, Backend& backend) {
  DType dtype = plan_.values[value].type.dtype;
  Backend& runner = backend.supports(OpId::copy, dtype) ? backend : place(OpId::copy, dtype);
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
      Backend* copier = nullptr;
      DType dtype = v.type.dtype;
      for (Backend* b : options_.backends)
        if (!copier && b->device() == source->device() && b->supports(OpId::copy, dtype)) copier = b;
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

// The fused step for add(producer, bias) with the producer on `side` of the add: a 2-d matmul
// and an (N,) bias, or a conv2d and a per-channel bias ((O, 1, 1) or (1, O, 1, 1), as nn::Conv2d
// adds it). The producer must have no other reader, and its backend must have the fused kernel.
std::optional<Planner::Fused> Planner::match_bias_add(int add_id, int side, const std::vector<int>& uses) const {
  const Node& add = graph_.node(add_id);
  const int producer = add.inputs[side], bias = add.inputs[1 - side];
  const Node& p = graph_.node(producer);
  if (p.role != NodeRole::Op || uses[producer] != 1 || p.type != add.type) return std::nullopt;
  const TensorType& tbias = graph_.type_of(bias);
  if (tbias.dtype != add.type.dtype) return std::nullopt;
  OpId fused_op;
  if (p.op == OpId::matmul) {
    if (!is_2d_matmul(producer)) return std::nullopt;
    MatmulDims d = matmul_dims(graph_.type_of(p.inputs[0]).shape, graph_.type_of(p.inputs[1]).shape, p.attrs);
    if (d.k == 0 || tbias.shape != Shape{d.n}) return std::nullopt;
    fused_op = OpId::matmul_bias_act;
  } else if (p.op == OpId::conv2d) {
    const int64_t o = add.type.shape[1];
    if (tbias.shape != Shape{1, o, 1, 1} && tbias.shape != Shape{o, 1, 1}) return std::nullopt;
    fused_op = OpId::conv2d_bias_act;
  } else {
    return std::nullopt;
  }
  if (!fuses_in_place(fused_op, p.op, add.type.dtype)) return std::nullopt;
  return Fused{fused_op, p.inputs[0], p.inputs[1], bias, p.attrs};
}

// Finds act(add(matmul or conv2d, bias)) chains to run as one fused step.
void Planner::find_fusions(const std::vector<bool>& needed, const std::vector<Sym>& outputs) {
  const int n = graph_.size();
  absorbed_.assign(n, false);
  if (!options_.fuse) return;
  std::vector<int> uses(n, 0), user(n, -1);
  for (int id = 0; id < n; ++id)
    if (needed[id])
      for (int in : graph_.node(id).inputs) ++uses[in], user[in] = id;
  for (const Sym& s : outputs) ++uses[s.id];  // an output is also read after the last step
  for (int id = 0; id < n; ++id) {
    if (!needed[id] || !is_op(id, OpId::add)) continue;
    for (int side = 0; side < 2; ++side) {
      std::optional<Fused> f = match_bias_add(id, side, uses);
      if (!f) continue;
      int last = id;
      const int next = user[id];
      if (uses[id] == 1 && (is_op(next, OpId::relu) || is_op(next, OpId::gelu))) {
        f->attrs.activation = is_op(next, OpId::relu) ? Activation::relu : Activation::gelu;
        f->attrs.gelu_tanh = graph_.node(next).attrs.gelu_tanh;
        absorbed_[id] = true;
        last = next;
      }
      absorbed_[graph_.node(id).inputs[side]] = true;
      fused_[last] = *f;
      break;
    }
  }
  find_dact(needed, uses);
  find_bgrad_pairs(needed);
}

// relu_backward(y, matmul(a, b)) or gelu_backward(x, matmul(a, b)) (the gradient reaching an
// activation from the next layer, g W) where nothing else reads the product: one matmul_dact
// step, cuBLASLt's DRELU/DGELU epilogue. Runs before the BGRAD pairing, which then sees the
// product as gone.
void Planner::find_dact(const std::vector<bool>& needed, const std::vector<int>& uses) {
  const int n = graph_.size();
  for (int id = 0; id < n; ++id) {
    const bool relu_grad = is_op(id, OpId::relu_backward);
    if (!needed[id] || (!relu_grad && !is_op(id, OpId::gelu_backward))) continue;
    const Node& r = graph_.node(id);
    const int product = r.inputs[1], aux = r.inputs[0];
    // One use: the product is read by nothing else (not even as this backward's aux).
    if (!is_2d_matmul(product) || absorbed_[product] || uses[product] != 1) continue;
    const Node& m = graph_.node(product);
    if (m.type != r.type || graph_.type_of(aux) != r.type ||
        !fuses_in_place(OpId::matmul_dact, OpId::matmul, m.type.dtype))
      continue;
    Attrs attrs = m.attrs;
    attrs.activation = relu_grad ? Activation::relu : Activation::gelu;
    attrs.gelu_tanh = r.attrs.gelu_tanh;
    absorbed_[product] = true;
    fused_[id] = Fused{OpId::matmul_dact, m.inputs[0], m.inputs[1], aux, attrs};
  }
}

// matmul(g, x, trans_a) (an nn::Linear weight's gradient g^T x) or matmul(x, g, trans_a) (x^T g)
// beside sum(g, axes {0}) (its bias's gradient): both reduce over g's rows, which cuBLASLt's
// BGRAD epilogue does while it computes the product.
void Planner::find_bgrad_pairs(const std::vector<bool>& needed) {
  const int n = graph_.size();
  std::map<int, std::vector<int>> row_sums;  // g -> the sums over its rows
  for (int id = 0; id < n; ++id) {
    if (!needed[id] || !is_op(id, OpId::sum)) continue;
    const Node& s = graph_.node(id);
    const std::vector<int64_t>& axes = s.attrs.axes;
    if (graph_.type_of(s.inputs[0]).shape.size() == 2 && !s.attrs.keepdim && axes.size() == 1 &&
        (axes[0] == 0 || axes[0] == -2))
      row_sums[s.inputs[0]].push_back(id);
  }
  for (int id = 0; id < n; ++id) {
    if (!needed[id] || absorbed_[id] || !is_2d_matmul(id)) continue;
    const Node& m = graph_.node(id);
    const DType dtype = m.type.dtype;
    if (!fuses_in_place(OpId::matmul_bgrad, OpId::matmul, dtype)) continue;
    for (int axis = 0; axis < 2; ++axis) {
      const int g = m.inputs[axis];
      auto candidates = row_sums.find(g);
      if ((axis == 0 ? !m.attrs.trans_a : m.attrs.trans_b) || candidates == row_sums.end() ||
          candidates->second.empty())
        continue;
      const int sum = candidates->second.front();
      // Planned at the first of the two: every input must be there by then.
      const int first = std::min(id, sum);
      if (graph_.node(sum).type.dtype != dtype || m.inputs[0] >= first || m.inputs[1] >= first) continue;
      candidates->second.erase(candidates->second.begin());
      bgrad_[first] = {id, sum, axis};
      absorbed_[std::max(id, sum)] = true;
      break;
    }
  }
}

void Planner::plan_bgrad(const BgradPair& pair) {
  const Node& m = graph_.node(pair.matmul);
  Attrs attrs = m.attrs;
  attrs.axis = pair.axis;
  Backend& backend = place(OpId::matmul_bgrad, m.type.dtype);
  const int packed =
      emit_placed(OpId::matmul_bgrad, attrs, {value_of_[m.inputs[0]], value_of_[m.inputs[1]]}, backend, -1);
  const int64_t product = m.type.shape[0] * m.type.shape[1];
  const int64_t total = plan_.values[packed].type.shape[0];
  auto part = [](int64_t begin, int64_t end) {
    Attrs a;
    a.axes = {0};
    a.starts = {begin};
    a.ends = {end};
    a.steps = {1};
    return a;
  };
  Attrs as_matrix;
  as_matrix.shape = m.type.shape;
  value_of_[pair.matmul] = emit_view(OpId::reshape, as_matrix, emit_view(OpId::slice, part(0, product), packed, -1),
                                     pair.matmul);
  value_of_[pair.sum] = emit_view(OpId::slice, part(product, total), packed, pair.sum);
}

void Planner::plan_node(int id) {
  if (auto it = bgrad_.find(id); it != bgrad_.end()) return plan_bgrad(it->second);
  if (absorbed_[id]) return;
  if (auto it = fused_.find(id); it != fused_.end()) {
    const Fused& f = it->second;
    Backend& backend = place(f.op, graph_.type_of(id).dtype);
    int extra = value_of_[f.extra];
    if (f.op != OpId::matmul_dact) {  // the bias as the fused op wants it: (N,) or (O,), a view
      const TensorType& out = graph_.type_of(id);
      const Shape flat{f.op == OpId::conv2d_bias_act ? out.shape[1] : out.shape.back()};
      if (plan_.values[extra].type.shape != flat) {
        if (!is_contiguous(extra)) extra = contiguous_copy(extra, *plan_.values[extra].backend);
        Attrs to_flat;
        to_flat.shape = flat;
        extra = emit_view(OpId::reshape, to_flat, extra, -1);
      }
    }
    value_of_[id] = emit_placed(f.op, f.attrs, {value_of_[f.a], value_of_[f.b], extra}, backend, id);
    return;
  }
  const Node& node = graph_.node(id);
  if (node.role != NodeRole::Op) {
    PlanValue v;
    v.type = node.type;
    v.home = ValueHome::External;
    v.backend = options_.backends.front();
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
  std::vector<TensorType> types;
  for (int in : node.inputs) types.push_back(graph_.type_of(in));
  Backend& backend = place(node.op, dispatch_dtype_of(node.op, types, node.type));
  value_of_[id] = emit_placed(node.op, node.attrs, std::move(inputs), backend, id);
}

// A kernel step on `backend`: inputs moved there (and made contiguous where its kernel needs
// that), the plan-wide attributes (TF32, deterministic) set.
int Planner::emit_placed(OpId op, Attrs attrs, std::vector<int> inputs, Backend& backend, int graph_node) {
  for (int& in : inputs) {
    in = on_backend(in, backend);
    if (!backend.accepts_strided_inputs(op) && !is_contiguous(in)) in = contiguous_copy(in, backend);
  }
  attrs.allow_tf32 = options_.allow_tf32 && uses_tensor_cores(op);
  attrs.deterministic = options_.deterministic;
  return emit_kernel(op, attrs, std::move(inputs), backend, graph_node);
}

void Planner::compute_lifetimes() {
  auto use = [&](int value, int step) {
    PlanValue& root = plan_.values[plan_.root_of(value)];
    if (root.home == ValueHome::Arena) root.last_step = std::max(root.last_step, step);
  };
  for (int s = 0; s < static_cast<int>(plan_.steps.size()); ++s) {
    const PlanStep& step = plan_.steps[s];
    for (int in : step.inputs) use(in, s);
    PlanValue& out = plan_.values[step.output];
    if (out.home == ValueHome::Arena) out.first_step = out.last_step = s;
  }
  // Outputs are copied out after the last step, so they (and what they view) live to the end.
  for (int v : plan_.outputs) use(v, static_cast<int>(plan_.steps.size()));
}

void Planner::assign_offsets() {
  std::map<Device, int, bool (*)(const Device&, const Device&)> arena_of(
      [](const Device& a, const Device& b) { return std::tie(a.type, a.index) < std::tie(b.type, b.index); });
  std::vector<std::vector<int>> members;
  for (int i = 0; i < static_cast<int>(plan_.values.size()); ++i) {
    PlanValue& v = plan_.values[i];
    if (v.home != ValueHome::Arena) continue;
    Device d = v.backend->device();
    auto [it, fresh] = arena_of.try_emplace(d, static_cast<int>(plan_.arenas.size()));
    if (fresh) {
      ArenaPlan a;
      a.device = d;
      for (Backend* b : options_.backends)
        if (b->device() == d) {
          a.allocator = b;
          break;
        }
      plan_.arenas.push_back(a);
      members.emplace_back();
    }
    v.arena = it->second;
    // Empty tensors still get a distinct range, so every buffer has a real address.
    v.bytes = round_up(std::max<size_t>(1, numel(v.type.shape) * dtype_size(v.type.dtype)), kArenaAlignment);
    members[v.arena].push_back(i);
  }
  for (size_t a = 0; a < plan_.arenas.size(); ++a) {
    ArenaPlan& arena = plan_.arenas[a];
    std::vector<int>& ids = members[a];
    for (int id : ids) arena.unshared_bytes += plan_.values[id].bytes;
    if (!options_.reuse_memory) {
      size_t next = 0;
      for (int id : ids) {
        plan_.values[id].offset = next;
        next += plan_.values[id].bytes;
      }
      arena.peak_bytes = next;
      continue;
    }
    // Greedy: buffers in some order, each into the smallest gap left by the already placed
    // buffers whose lifetimes overlap its own, else after the highest of them. Which order packs
    // best depends on the graph (a fused step that removes a buffer can leave a worse gap for
    // one order), so five are tried and the lowest peak kept (the first of equals): biggest
    // first, longest-lived first, in the order the steps write them, largest bytes x lifetime
    // first, and last-read first.
    auto pack = [&](const std::vector<int>& order, std::vector<size_t>& offsets) {
      size_t peak = 0;
      std::vector<int> placed;
      for (int id : order) {
        const PlanValue& v = plan_.values[id];
        std::vector<std::pair<size_t, size_t>> live;  // (offset, end) of overlapping placed buffers
        for (int p : placed) {
          const PlanValue& o = plan_.values[p];
          if (o.first_step <= v.last_step && v.first_step <= o.last_step)
            live.emplace_back(offsets[p], offsets[p] + o.bytes);
        }
        std::sort(live.begin(), live.end());
        size_t end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (auto [begin, stop] : live) {
          if (begin > end && begin - end >= v.bytes && begin - end < best_gap) {
            best_gap = begin - end;
            best = end;
          }
          end = std::max(end, stop);
        }
        offsets[id] = best != SIZE_MAX ? best : end;
        peak = std::max(peak, offsets[id] + v.bytes);
        placed.push_back(id);
      }
      return peak;
    };
    // The five orders, each by a key, largest key first (stable: ties keep value order).
    auto by = [&](auto key) {
      std::vector<int> order = ids;
      std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return key(x) > key(y); });
      return order;
    };
    auto bytes = [&](int x) { return plan_.values[x].bytes; };
    auto span = [&](int x) { return static_cast<size_t>(plan_.values[x].last_step - plan_.values[x].first_step); };
    const std::vector<std::vector<int>> orders{
        by(bytes),
        by([&](int x) { return std::pair(span(x), bytes(x)); }),
        by([&](int x) { return -plan_.values[x].first_step; }),
        by([&](int x) { return bytes(x) * (span(x) + 1); }),
        by([&](int x) { return plan_.values[x].last_step; }),
    };
    std::vector<size_t> offsets(plan_.values.size()), best_offsets;
    arena.peak_bytes = SIZE_MAX;
    for (const std::vector<int>& order : orders) {
      const size_t peak = pack(order, offsets);
      if (peak < arena.peak_bytes) {
        arena.peak_bytes = peak;
        best_offsets = offsets;
      }
    }
    for (int id : ids) plan_.values[id].offset = best_offsets[id];
  }
}

Plan Planner::run(const std::vector<Sym>& outputs) {
  std::vector<bool> needed(graph_.size(), false);
  for (const Sym& s : outputs) {
    GPUML_CHECK(s.emitter == &graph_ && s.id >= 0 && s.id < graph_.size(), "plan_graph: an output is not in this graph");
    needed[s.id] = true;
  }
  for (int id = graph_.size() - 1; id >= 0; --id)
    if (needed[id])
      for (int in : graph_.node(id).inputs) needed[in] = true;
  value_of_.assign(graph_.size(), -1);
  find_fusions(needed, outputs);
  for (int id = 0; id < graph_.size(); ++id)
    if (needed[id]) plan_node(id);
  for (const Sym& s : outputs) plan_.outputs.push_back(value_of_[s.id]);
  compute_lifetimes();
  assign_offsets();
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
    out += fmt::format("{:3} {:8} v{} = {}({}) on {}{} {} {} {}\n", s, kind, st.output, op_name(st.op),
                       fmt::join(ins, ", "), st.backend->name(), st.source ? fmt::format(" from {}", st.source->name()) : "",
                       shape_str(v.type.shape), v.type.dtype, where);
  }
  for (const ArenaPlan& a : arenas)
    out += fmt::format("arena {}: peak {} bytes ({} without reuse)\n", a.device.str(), a.peak_bytes, a.unshared_bytes);
  return out;
}

}  // namespace gpuml
