// Each rule is a vector-Jacobian product written with ops from build.h. The rules live in one
// table indexed by OpId, filled by registration below; an empty entry means "not differentiable".
#include "ops/grad_rules.h"

#include <array>
#include <cmath>

#include "core/error.h"

namespace gpuml {

namespace {

struct GradContext {
  const std::vector<Sym>& in;
  Sym out;  // output 0
  Sym g;    // output 0's upstream gradient, shaped like `out` (a Sym of no graph if it has none)
  const Attrs& attrs;
  const std::vector<Sym>& outs;  // every output (ops with several; outs[0] is `out`)
  const Upstreams& gs;           // their upstream gradients, nullopt where none
};

using GradFn = GradInputs (*)(const GradContext& c);

struct GradEntry {
  GradFn fn = nullptr;
  uint32_t no_grad_inputs = 0;  // bit i set: input i never carries a gradient
};

Sym one_like(Sym x) { return scalar_like(x, 1.0); }
Sym zero_like(Sym x) { return scalar_like(x, 0.0); }

// sum() with no axes reduces everything; gradient rules often need "these axes, maybe none".
Sym sum_over(Sym x, const std::vector<int64_t>& axes) { return axes.empty() ? x : sum(x, axes); }

// The shape `x` had before a reduction, with reduced dims kept as 1 (for broadcasting back).
Shape keepdim_shape(const Shape& x, const Attrs& attrs, const char* what) {
  std::vector<bool> reduced = reduced_axes(attrs, static_cast<int>(x.size()), what);
  Shape s = x;
  for (size_t i = 0; i < s.size(); ++i)
    if (reduced[i]) s[i] = 1;
  return s;
}

Sym broadcast_back(Sym reduced, const Shape& input_shape, const Attrs& attrs, const char* what) {
  return broadcast_to(reshape(reduced, keepdim_shape(input_shape, attrs, what)), input_shape);
}

Sym as_mask(Sym cond, DType dtype) { return cast(cond, dtype); }

// Unary.
GradInputs grad_neg(const GradContext& c) { return {neg(c.g)}; }
GradInputs grad_abs(const GradContext& c) { return {mul(c.g, sign(c.in[0]))}; }
GradInputs grad_exp(const GradContext& c) { return {mul(c.g, c.out)}; }
GradInputs grad_log(const GradContext& c) { return {div(c.g, c.in[0])}; }
GradInputs grad_sqrt(const GradContext& c) { return {div(c.g, mul_scalar(c.out, 2.0))}; }
// d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
GradInputs grad_rsqrt(const GradContext& c) {
  return {mul(c.g, mul_scalar(mul(c.out, mul(c.out, c.out)), -0.5))};
}
GradInputs grad_tanh(const GradContext& c) { return {mul(c.g, sub(one_like(c.out), mul(c.out, c.out)))}; }
GradInputs grad_sigmoid(const GradContext& c) {
  return {mul(c.g, mul(c.out, sub(one_like(c.out), c.out)))};
}
// Masked by the output, as PyTorch: y > 0 exactly where x > 0 (NaN gives 0 either way), and the
// input can be freed once relu has run (the next layer keeps y alive anyway). One fused pass
// instead of gt + fill + where.
GradInputs grad_relu(const GradContext& c) { return {emit(OpId::relu_backward, {c.out, c.g})}; }
GradInputs grad_gelu(const GradContext& c) { return {emit(OpId::gelu_backward, {c.in[0], c.g}, c.attrs)}; }
GradInputs grad_cast(const GradContext& c) {
  DType from = c.in[0].dtype();
  if (!is_floating(from)) return {std::nullopt};
  return {from == c.g.dtype() ? c.g : cast(c.g, from)};
}
GradInputs grad_copy(const GradContext& c) { return {c.g}; }

// Binary, with broadcast dims summed back to each input's shape.
GradInputs reduced_pair(const GradContext& c, Sym ga, Sym gb) {
  return {reduce_to_shape(ga, c.in[0].shape()), reduce_to_shape(gb, c.in[1].shape())};
}
GradInputs grad_add(const GradContext& c) { return reduced_pair(c, c.g, c.g); }
GradInputs grad_sub(const GradContext& c) { return reduced_pair(c, c.g, neg(c.g)); }
GradInputs grad_mul(const GradContext& c) { return reduced_pair(c, mul(c.g, c.in[1]), mul(c.g, c.in[0])); }
GradInputs grad_div(const GradContext& c) {
  Sym b = c.in[1];
  return reduced_pair(c, div(c.g, b), neg(div(mul(c.g, c.out), b)));
}
GradInputs grad_pow(const GradContext& c) {
  Sym a = c.in[0], b = c.in[1];
  Sym ga = mul(c.g, mul(b, pow(a, sub(b, one_like(b)))));
  Sym gb = mul(c.g, mul(c.out, log(a)));
  return reduced_pair(c, ga, gb);
}
// maximum/minimum: the gradient goes to the winning side; on a tie it is split half and half,
// as in PyTorch, which is also what a central difference measures at a tie.
GradInputs minmax_grad(const GradContext& c, bool is_max) {
  Sym a = c.in[0], b = c.in[1];
  DType d = c.g.dtype();
  Sym a_wins = as_mask(is_max ? gt(a, b) : lt(a, b), d);
  Sym tie_half = mul_scalar(as_mask(eq(a, b), d), 0.5);
  Sym weight_a = add(a_wins, tie_half);
  Sym weight_b = sub(one_like(weight_a), weight_a);
  return reduced_pair(c, mul(c.g, weight_a), mul(c.g, weight_b));
}
GradInputs grad_maximum(const GradContext& c) { return minmax_grad(c, true); }
GradInputs grad_minimum(const GradContext& c) { return minmax_grad(c, false); }
GradInputs grad_where(const GradContext& c) {
  Sym cond = c.in[0];
  Sym zero = zero_like(c.g);
  return {std::nullopt, reduce_to_shape(where(cond, c.g, zero), c.in[1].shape()),
          reduce_to_shape(where(cond, zero, c.g), c.in[2].shape())};
}

// Reductions.
GradInputs grad_sum(const GradContext& c) { return {broadcast_back(c.g, c.in[0].shape(), c.attrs, "sum")}; }
GradInputs grad_mean(const GradContext& c) {
  const Shape& xs = c.in[0].shape();
  int64_t count = numel(xs) / std::max<int64_t>(1, numel(keepdim_shape(xs, c.attrs, "mean")));
  Sym spread = broadcast_back(c.g, xs, c.attrs, "mean");
  return {mul_scalar(spread, 1.0 / static_cast<double>(count))};
}
// Ties share the gradient equally, so the rule is a valid subgradient and matches max's symmetry.
GradInputs grad_max(const GradContext& c) {
  Sym x = c.in[0];
  Shape kept = keepdim_shape(x.shape(), c.attrs, "max");
  Sym is_max = as_mask(eq(x, broadcast_to(reshape(c.out, kept), x.shape())), x.dtype());
  Attrs keep = c.attrs;
  keep.keepdim = true;
  Sym ties = emit(OpId::sum, {is_max}, keep);
  Sym g = reshape(c.g, kept);
  return {mul(is_max, div(g, ties))};
}
GradInputs grad_softmax(const GradContext& c) {
  Sym y = c.out;
  Sym dot = sum(mul(c.g, y), {c.attrs.axis}, /*keepdim*/ true);
  return {mul(y, sub(c.g, dot))};
}
GradInputs grad_log_softmax(const GradContext& c) {
  Sym total = sum(c.g, {c.attrs.axis}, /*keepdim*/ true);
  return {sub(c.g, mul(exp(c.out), total))};
}

// With A' = op(A), B' = op(B): dA' = G B'^T and dB' = A'^T G; transposes fold into the flags.
GradInputs grad_matmul(const GradContext& c) {
  Sym a = c.in[0], b = c.in[1], g = c.g;
  bool ta = c.attrs.trans_a, tb = c.attrs.trans_b;
  Sym da = !ta ? (tb ? matmul(g, b) : matmul(g, b, false, true)) : (tb ? matmul(b, g, true, true) : matmul(b, g, false, true));
  Sym db = !tb ? (ta ? matmul(a, g) : matmul(a, g, true, false)) : (ta ? matmul(g, a, true, true) : matmul(g, a, true, false));
  return reduced_pair(c, da, db);
}
// (matmul(a, b), sum(in[axis], over rows)): the product's gradient, plus the bias gradient's
// upstream spread over the rows of the operand it sums.
GradInputs grad_matmul_bgrad(const GradContext& c) {
  GradInputs grads = c.gs[0] ? grad_matmul(c) : GradInputs(2);
  if (!c.gs[1]) return grads;
  const int64_t axis = c.attrs.axis;
  const Shape& summed = c.in[axis].shape();
  Sym spread = broadcast_to(reshape(*c.gs[1], {1, summed[1]}), summed);
  grads[axis] = grads[axis] ? add(*grads[axis], spread) : spread;
  return grads;
}
GradInputs grad_conv2d(const GradContext& c) {
  Attrs data = c.attrs;
  data.shape = c.in[0].shape();
  Attrs filter = c.attrs;
  filter.shape = c.in[1].shape();
  return {emit(OpId::conv2d_backward_data, {c.g, c.in[1]}, data),
          emit(OpId::conv2d_backward_filter, {c.in[0], c.g}, filter)};
}
GradInputs grad_max_pool2d(const GradContext& c) {
  return {emit(OpId::max_pool2d_backward, {c.in[0], c.g}, c.attrs)};
}
GradInputs grad_avg_pool2d(const GradContext& c) {
  Attrs a = c.attrs;
  a.shape = c.in[0].shape();
  return {emit(OpId::avg_pool2d_backward, {c.g}, a)};
}

// Losses and norms.
// cross_entropy keeps each row's log-sum-exp (output 1), so the backward is one pass over the
// logits: softmax = exp(logits - lse). lse is a differentiable output too (the gradient check sums
// every output): d lse_r / d logits_rj = softmax_rj, on every row, ignored ones included.
GradInputs grad_cross_entropy(const GradContext& c) {
  Sym logits = c.in[0], lse = c.outs[1];
  GradInputs grads(2);
  if (c.gs[0]) grads[0] = emit(OpId::cross_entropy_backward, {logits, c.in[1], c.g, lse}, c.attrs);
  if (c.gs[1]) {
    auto column = [&](Sym per_row) {  // (N,) -> (N, 1) in the logits' dtype
      return reshape(per_row.dtype() == logits.dtype() ? per_row : cast(per_row, logits.dtype()), {-1, 1});
    };
    Sym term = mul(column(*c.gs[1]), exp(sub(logits, column(lse))));
    grads[0] = grads[0] ? add(*grads[0], term) : term;
  }
  return grads;
}
// layer_norm keeps each row's (mean, rstd) as outputs 1 and 2, which layer_norm_backward reads to
// give dx and the parameters' gradients (sum over rows of dy * xhat, and of dy) in one pass over
// x and dy. The statistics are differentiable outputs too (the gradient check sums every
// output); their terms need xhat = (x - mean) * rstd, with D the row length:
//   d mean / dx = 1 / D,   d rstd / dx = -rstd^2 * xhat / D   (rstd = (var + eps)^-1/2).
GradInputs grad_layer_norm(const GradContext& c) {
  Sym x = c.in[0], w = c.in[1];
  const Shape& xs = x.shape();
  const int first = normalize_axis(c.attrs.axis, x.ndim(), "layer_norm");
  Shape keep(xs.begin(), xs.begin() + first);  // a row statistic, broadcast against x
  keep.resize(xs.size(), 1);
  auto per_row = [&](Sym stat) { return reshape(stat.dtype() == x.dtype() ? stat : cast(stat, x.dtype()), keep); };
  Sym rstd = per_row(c.outs[2]);
  std::optional<Sym> xhat_sym;
  auto xhat = [&] {
    if (!xhat_sym) xhat_sym = mul(sub(x, per_row(c.outs[1])), rstd);
    return *xhat_sym;
  };
  GradInputs grads(3);
  if (c.gs[0]) {
    std::vector<Sym> d = emit_outputs(OpId::layer_norm_backward, {x, w, c.g, c.outs[1], c.outs[2]}, c.attrs);
    grads = {d[0], d[1], d[2]};
  }
  const double inv_d = 1.0 / static_cast<double>(numel(w.shape()));
  auto add_to_dx = [&](Sym term) { grads[0] = grads[0] ? add(*grads[0], term) : term; };
  if (c.gs[2]) add_to_dx(mul(xhat(), mul(per_row(*c.gs[2]), mul_scalar(mul(rstd, rstd), -inv_d))));
  if (c.gs[1]) add_to_dx(mul_scalar(per_row(*c.gs[1]), inv_d));
  if (grads[0] && grads[0]->shape() != xs) grads[0] = broadcast_to(*grads[0], xs);  // mean's term alone
  return grads;
}
GradInputs grad_batch_norm(const GradContext& c) {
  Sym x = c.in[0], w = c.in[1], running_var = c.in[4];
  Emitter& e = x.emitter();
  Sym xhat = emit(OpId::batch_norm,
                  {x, fill(e, w.shape(), 1.0, w.dtype()), fill(e, w.shape(), 0.0, w.dtype()), c.in[3], running_var},
                  c.attrs);
  std::vector<int64_t> not_channel;
  for (int i = 0; i < x.ndim(); ++i)
    if (i != 1) not_channel.push_back(i);
  Sym dx;
  if (c.attrs.training) {
    dx = emit(OpId::batch_norm_backward, {x, w, c.g}, c.attrs);
  } else {  // running statistics are constants: y = x * w / sqrt(var + eps) + ...
    Shape channel_shape(x.ndim() - 1, 1);
    channel_shape[0] = x.shape()[1];  // (C, 1, 1...) broadcasts against (N, C, ...)
    Sym scale = mul(w, rsqrt(add_scalar(running_var, c.attrs.eps)));
    dx = mul(c.g, reshape(scale, channel_shape));
  }
  return {dx, sum_over(mul(c.g, xhat), not_channel), sum_over(c.g, not_channel), std::nullopt, std::nullopt};
}
// attention keeps each row's log-sum-exp (output 1), so attention_backward recomputes the
// probabilities P from it instead of storing them (FlashAttention-2): (dq, dk, dv) in one op.
// lse is a differentiable output too (the gradient check sums every output): d lse_i / d s_ij =
// P_ij, taken before dropout, so with s = q k^T * scale and g_i its upstream gradient
//   dq += scale * (P * g) k,   dk += scale * (P * g)^T q.
// That term is written with matmul and softmax and so builds the (Tq, Tk) matrix: only a loss
// that reads lse pays for it; a model reading o alone never emits it.
GradInputs grad_attention(const GradContext& c) {
  Sym q = c.in[0], k = c.in[1], v = c.in[2];
  GradInputs grads(3);
  if (c.gs[0]) {
    std::vector<Sym> d = emit_outputs(OpId::attention_backward, {q, k, v, c.out, c.g, c.outs[1]}, c.attrs);
    grads = {d[0], d[1], d[2]};
  }
  if (c.gs[1]) {
    const AttentionDims dims = attention_dims(q.shape(), k.shape(), c.attrs);
    Emitter& e = q.emitter();
    Sym scores = mul_scalar(matmul(q, k, false, true), dims.scale);  // (B, H, Tq, Tk)
    if (c.attrs.causal) {
      Sym rows = reshape(arange(e, dims.tq, DType::i64, static_cast<double>(dims.causal_shift())), {dims.tq, 1});
      Sym cols = reshape(arange(e, dims.tk, DType::i64), {1, dims.tk});
      scores = where(ge(rows, cols), scores, fill(e, {}, -INFINITY, scores.dtype()));
    }
    Sym g_lse = *c.gs[1];
    if (g_lse.dtype() != q.dtype()) g_lse = cast(g_lse, q.dtype());
    Sym weighted = mul(softmax(scores, -1), reshape(g_lse, {dims.batch, dims.heads, dims.tq, 1}));
    Sym dq = mul_scalar(matmul(weighted, k), dims.scale);
    Sym dk = mul_scalar(matmul(weighted, q, /*trans_a*/ true), dims.scale);
    grads[0] = grads[0] ? add(*grads[0], dq) : dq;
    grads[1] = grads[1] ? add(*grads[1], dk) : dk;
  }
  return grads;
}
// The same Philox mask and 1/(1-p) scale apply to the gradient.
GradInputs grad_dropout(const GradContext& c) { return {emit(OpId::dropout, {c.g}, c.attrs)}; }
GradInputs grad_embedding(const GradContext& c) {
  Attrs a;
  a.shape = c.in[0].shape();
  return {emit(OpId::embedding_backward, {c.in[1], c.g}, a), std::nullopt};
}

// Movement.
GradInputs grad_reshape(const GradContext& c) { return {reshape(c.g, c.in[0].shape())}; }
GradInputs grad_permute(const GradContext& c) {
  int nd = c.in[0].ndim();
  std::vector<int64_t> inverse(nd);
  for (int i = 0; i < nd; ++i) inverse[normalize_axis(c.attrs.axes[i], nd, "permute")] = i;
  return {permute(c.g, inverse)};
}
GradInputs grad_slice(const GradContext& c) {
  Attrs a = c.attrs;
  a.shape = c.in[0].shape();
  return {emit(OpId::slice_backward, {c.g}, a)};
}
GradInputs grad_broadcast_to(const GradContext& c) { return {reduce_to_shape(c.g, c.in[0].shape())}; }
GradInputs grad_concat(const GradContext& c) {
  int axis = normalize_axis(c.attrs.axis, c.out.ndim(), "concat");
  GradInputs out;
  int64_t start = 0;
  for (const Sym& x : c.in) {
    int64_t len = x.shape()[axis];
    out.push_back(slice(c.g, axis, start, start + len));
    start += len;
  }
  return out;
}
GradInputs grad_pad(const GradContext& c) {
  const Shape& xs = c.in[0].shape();
  Attrs a;
  for (size_t d = 0; d < xs.size(); ++d) {
    int64_t before = c.attrs.pads[2 * d];
    a.axes.push_back(static_cast<int64_t>(d));
    a.starts.push_back(before);
    a.ends.push_back(before + xs[d]);
    a.steps.push_back(1);
  }
  return {emit(OpId::slice, {c.g}, a)};
}

// y = sum over ranks r of x_r, so d(sum over ranks of L_r)/dx_r = sum over ranks of dL_r/dy: each
// rank's gradient is the all-reduce of the ones it receives. (A data-parallel step weights each
// rank's loss; ModelRunner differentiates w_r * L_r so that this plain sum is exact.)
GradInputs grad_all_reduce_sum(const GradContext& c) { return {all_reduce_sum(c.g)}; }

using GradTable = std::array<GradEntry, kNumOps>;

const GradTable& grad_table() {
  static const GradTable table = [] {
    GradTable t{};
    auto reg = [&t](OpId op, GradFn fn, uint32_t no_grad_inputs = 0) {
      t[static_cast<int>(op)] = GradEntry{fn, no_grad_inputs};
    };
    reg(OpId::neg, grad_neg);
    reg(OpId::abs, grad_abs);
    reg(OpId::exp, grad_exp);
    reg(OpId::log, grad_log);
    reg(OpId::sqrt, grad_sqrt);
    reg(OpId::rsqrt, grad_rsqrt);
    reg(OpId::tanh, grad_tanh);
    reg(OpId::sigmoid, grad_sigmoid);
    reg(OpId::relu, grad_relu);
    reg(OpId::gelu, grad_gelu);
    reg(OpId::cast, grad_cast);
    reg(OpId::copy, grad_copy);
    reg(OpId::add, grad_add);
    reg(OpId::sub, grad_sub);
    reg(OpId::mul, grad_mul);
    reg(OpId::div, grad_div);
    reg(OpId::pow, grad_pow);
    reg(OpId::maximum, grad_maximum);
    reg(OpId::minimum, grad_minimum);
    reg(OpId::where, grad_where, 0b1);
    reg(OpId::sum, grad_sum);
    reg(OpId::mean, grad_mean);
    reg(OpId::max, grad_max);
    reg(OpId::softmax, grad_softmax);
    reg(OpId::log_softmax, grad_log_softmax);
    reg(OpId::matmul, grad_matmul);
    reg(OpId::matmul_bgrad, grad_matmul_bgrad);
    reg(OpId::conv2d, grad_conv2d);
    reg(OpId::max_pool2d, grad_max_pool2d);
    reg(OpId::avg_pool2d, grad_avg_pool2d);
    reg(OpId::cross_entropy, grad_cross_entropy, 0b10);
    reg(OpId::layer_norm, grad_layer_norm);
    reg(OpId::attention, grad_attention);
    reg(OpId::batch_norm, grad_batch_norm, 0b11000);
    reg(OpId::dropout, grad_dropout);
    reg(OpId::embedding, grad_embedding, 0b10);
    reg(OpId::reshape, grad_reshape);
    reg(OpId::permute, grad_permute);
    reg(OpId::slice, grad_slice);
    reg(OpId::broadcast_to, grad_broadcast_to);
    reg(OpId::concat, grad_concat);
    reg(OpId::pad, grad_pad);
    reg(OpId::all_reduce_sum, grad_all_reduce_sum);
    return t;
  }();
  return table;
}

}  // namespace

GradInputs grad_rule(OpId op, const std::vector<Sym>& inputs, const std::vector<Sym>& outputs,
                     const Upstreams& upstreams, const Attrs& attrs) {
  const GradEntry& entry = grad_table()[static_cast<int>(op)];
  GPUML_CHECK_KIND(ErrorKind::Unsupported, entry.fn != nullptr, "{} is not differentiable", op_name(op));
  GPUML_CHECK_KIND(ErrorKind::Internal,
                   static_cast<int>(outputs.size()) == op_info(op).outputs && upstreams.size() == outputs.size(),
                   "{}: {} outputs and {} upstream gradients for an op with {} outputs", op_name(op), outputs.size(),
                   upstreams.size(), op_info(op).outputs);
  GPUML_CHECK_KIND(ErrorKind::Internal, outputs.size() > 1 || upstreams[0].has_value(),
                   "{}: no upstream gradient for its one output", op_name(op));
  for (size_t i = 0; i < outputs.size(); ++i)
    GPUML_CHECK_KIND(ErrorKind::Shape, !upstreams[i] || upstreams[i]->shape() == outputs[i].shape(),
                     "{}: upstream gradient {} does not match output {} {}", op_name(op),
                     upstreams[i] ? shape_str(upstreams[i]->shape()) : "", i, shape_str(outputs[i].shape()));
  GradInputs grads = entry.fn(GradContext{inputs, outputs[0], upstreams[0].value_or(Sym{}), attrs, outputs, upstreams});
  GPUML_CHECK_KIND(ErrorKind::Internal, grads.size() == inputs.size(), "{}: gradient rule gave {} grads for {} inputs",
                   op_name(op), grads.size(), inputs.size());
  return grads;
}

bool input_is_differentiable(OpId op, int input_index) {
  const GradEntry& entry = grad_table()[static_cast<int>(op)];
  if (entry.fn == nullptr) return false;
  return input_index >= 32 || (entry.no_grad_inputs & (1u << input_index)) == 0;
}

}  // namespace gpuml
