#include "graph/autodiff.h"

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "ops/build.h"
#include "ops/grad_rules.h"

namespace gpuml {

namespace {

bool carries_gradient(const Node& n, int input_index, const TensorType& input_type) {
  return n.role == NodeRole::Op && op_info(n.op).differentiable && is_floating(input_type.dtype) &&
         input_is_differentiable(n.op, input_index);
}

// Values that depend (differentiably) on some wrt: a forward sweep in build order. An op's
// further outputs (OpOutput nodes) depend on what its output 0, the Op node, depends on.
std::vector<bool> depends_on_wrt(const Graph& g, const std::vector<Sym>& wrt, int last) {
  std::vector<bool> reached(g.size(), false);
  for (const Sym& s : wrt) reached[s.id] = true;
  for (int id = 0; id <= last; ++id) {
    const Node& n = g.node(id);
    if (n.role == NodeRole::OpOutput) {
      reached[id] = reached[id] || reached[n.inputs[0]];
      continue;
    }
    for (size_t i = 0; i < n.inputs.size() && !reached[id]; ++i) {
      int in = n.inputs[i];
      if (reached[in] && carries_gradient(n, static_cast<int>(i), g.type_of(in))) reached[id] = true;
    }
  }
  return reached;
}

// Values the loss depends on: a backward sweep from the loss.
std::vector<bool> feeds_loss(const Graph& g, int loss) {
  std::vector<bool> needed(g.size(), false);
  needed[loss] = true;
  for (int id = loss; id >= 0; --id) {
    if (!needed[id]) continue;
    for (int in : g.node(id).inputs) needed[in] = true;
  }
  return needed;
}

// A value read through slices that tile one axis (q, k and v cut from one qkv product) gets one
// zero-padded slice_backward per slice, summed by adds: each pass writes the whole value. When
// every contribution is such a slice_backward, one step of their steps 1, and their ranges cover
// the axis end to end without overlap, the sum is exactly the concat of the slices' gradients
// (the other terms are zeros), which writes the value once. Returns nullopt otherwise; the adds
// already emitted then stand (and the ones not taken are never planned: nothing reads them).
std::optional<Sym> concat_of_slices(Graph& g, const std::vector<Sym>& parts) {
  if (parts.size() < 2) return std::nullopt;
  struct Piece {
    int64_t start, end;
    Sym grad;
  };
  std::vector<Piece> pieces;
  int64_t axis = -1;
  const Shape* full = nullptr;
  for (const Sym& p : parts) {
    const Node& n = g.node(p.id);
    if (n.role != NodeRole::Op || n.op != OpId::slice_backward) return std::nullopt;
    const Attrs& a = n.attrs;
    const bool unit_step = a.steps.empty() || (a.steps.size() == 1 && a.steps[0] == 1);
    if (a.axes.size() != 1 || a.starts.size() != 1 || a.ends.size() != 1 || !unit_step) return std::nullopt;
    const int64_t nd = static_cast<int64_t>(a.shape.size());
    const int64_t ax = a.axes[0] < 0 ? a.axes[0] + nd : a.axes[0];
    if (ax < 0 || ax >= nd || (full && (*full != a.shape || ax != axis))) return std::nullopt;
    full = &a.shape;
    axis = ax;
    const Sym grad = g.sym(n.inputs[0]);
    const int64_t start = a.starts[0], end = a.ends[0];
    if (start < 0 || end > a.shape[ax] || grad.shape()[ax] != end - start) return std::nullopt;
    pieces.push_back({start, end, grad});
  }
  std::sort(pieces.begin(), pieces.end(), [](const Piece& x, const Piece& y) { return x.start < y.start; });
  int64_t at = 0;
  std::vector<Sym> grads;
  for (const Piece& piece : pieces) {
    if (piece.start != at) return std::nullopt;
    at = piece.end;
    grads.push_back(piece.grad);
  }
  if (at != (*full)[axis]) return std::nullopt;
  return concat(grads, axis);
}

}  // namespace

std::vector<Sym> gradients(Graph& graph, Sym loss, const std::vector<Sym>& wrt) {
  GPUML_CHECK(loss.belongs_to(graph), "gradients: the loss belongs to a different graph");
  const TensorType& loss_type = graph.type_of(loss.id);
  GPUML_CHECK_SHAPE(loss_type.shape.empty(), "gradients: the loss must be a scalar (shape ()), got {}",
                    shape_str(loss_type.shape));
  GPUML_CHECK_KIND(ErrorKind::DType, is_floating(loss_type.dtype), "gradients: the loss must be floating, got {}",
                   loss_type.dtype);
  for (const Sym& s : wrt) {
    GPUML_CHECK(s.belongs_to(graph) && s.id >= 0 && s.id < graph.size(),
                "gradients: a wrt value is not in this graph");
    GPUML_CHECK_KIND(ErrorKind::DType, is_floating(s.dtype()), "gradients: wrt value %{} is {}, not floating",
                     s.id, s.dtype());
  }

  // Gradient rules emit with autocast off, so each gradient has its value's dtype (a bf16
  // activation gets a bf16 gradient, the f32 parameter behind a cast an f32 one).
  struct AutocastOff {
    Graph& g;
    Autocast saved;
    explicit AutocastOff(Graph& graph) : g(graph), saved(graph.autocast()) { g.set_autocast(Autocast::off); }
    ~AutocastOff() { g.set_autocast(saved); }
  } autocast_off(graph);

  const int loss_id = loss.id;
  std::vector<bool> reached = depends_on_wrt(graph, wrt, loss_id);
  std::vector<bool> needed = feeds_loss(graph, loss_id);
  auto active = [&](int id) { return reached[id] && needed[id]; };

  // grads[id]: the summed gradient of value id so far (nodes appended below are never visited).
  std::vector<std::optional<Sym>> grads(graph.size());
  if (active(loss_id)) grads[loss_id] = fill(graph, {}, 1.0, loss_type.dtype);
  // parts[id]: value id's gradient contributions, in the order they were summed.
  std::vector<std::vector<Sym>> parts(graph.size());
  // Value id's gradient, once every contribution is in (its readers all come after it).
  auto total = [&](int id) -> std::optional<Sym> {
    if (std::optional<Sym> joined = concat_of_slices(graph, parts[id])) {
      grads[id] = joined;
      parts[id].clear();
    }
    return grads[id];
  };

  // An Op node gathers the gradients of all its outputs (OpOutput nodes come after it, so they
  // are complete when it is reached); an output nothing differentiates gets none (nullopt).
  for (int id = loss_id; id >= 0; --id) {
    if (graph.node(id).role != NodeRole::Op) continue;
    const int count = graph.output_count(id);
    bool reached_by_gradient = false;
    for (int k = 0; k < count; ++k) reached_by_gradient |= active(id + k) && grads[id + k].has_value();
    if (!reached_by_gradient) continue;
    // Copy what the rule needs: emitting appends nodes and may move `node`.
    const Node& node = graph.node(id);
    OpId op = node.op;
    Attrs attrs = node.attrs;
    std::vector<int> input_ids = node.inputs;
    std::vector<Sym> inputs, outputs;
    Upstreams upstreams;
    for (int in : input_ids) inputs.push_back(graph.sym(in));
    for (int k = 0; k < count; ++k) {
      outputs.push_back(graph.sym(id + k));
      upstreams.push_back(active(id + k) ? total(id + k) : std::nullopt);
    }
    GradInputs input_grads = grad_rule(op, inputs, outputs, upstreams, attrs);
    for (size_t i = 0; i < input_ids.size(); ++i) {
      int in = input_ids[i];
      if (!input_grads[i] || !active(in) || !carries_gradient(graph.node(id), static_cast<int>(i), graph.type_of(in)))
        continue;
      Sym contribution = *input_grads[i];
      GPUML_CHECK_KIND(ErrorKind::Internal, contribution.shape() == graph.type_of(in).shape,
                       "gradients: the {} rule gave input {} a gradient of shape {}, expected {}", op_name(op), i,
                       shape_str(contribution.shape()), shape_str(graph.type_of(in).shape));
      GPUML_CHECK_KIND(ErrorKind::Internal, contribution.dtype() == graph.type_of(in).dtype,
                       "gradients: the {} rule gave input {} a {} gradient, expected {}", op_name(op), i,
                       contribution.dtype(), graph.type_of(in).dtype);
      grads[in] = grads[in] ? add(*grads[in], contribution) : contribution;
      parts[in].push_back(contribution);
    }
  }

  std::vector<Sym> out;
  for (const Sym& s : wrt) {
    if (total(s.id)) out.push_back(*grads[s.id]);
    else out.push_back(fill(graph, s.shape(), 0.0, s.dtype()));
  }
  return out;
}

}  // namespace gpuml
