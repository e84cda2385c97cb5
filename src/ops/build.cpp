#include "ops/build.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace gpuml {

Emitter& Sym::emitter() const {
  GPUML_CHECK(handle_ != nullptr, "value %{} belongs to no graph (a default-constructed Sym)", id);
  GPUML_CHECK(handle_->emitter != nullptr,
              "value %{}: this value's graph no longer exists (a Sym must not outlive the Graph that made it)", id);
  return *handle_->emitter;
}

namespace {

// Emits the node and returns the value id of its output 0 (the others follow it).
int emit_node(Emitter& e, OpId op, const std::vector<Sym>& inputs, const Attrs& attrs) {
  std::vector<int> ids;
  ids.reserve(inputs.size());
  for (const Sym& s : inputs) {
    GPUML_CHECK(&s.emitter() == &e, "{}: input {} belongs to a different graph", op_name(op), s.id);
    ids.push_back(s.id);
  }
  return e.emit(op, ids, attrs);
}

Sym emit_on(Emitter& e, OpId op, const std::vector<Sym>& inputs, const Attrs& attrs) {
  GPUML_CHECK_KIND(ErrorKind::Internal, op_info(op).outputs == 1, "{} has {} outputs: build it with emit_outputs",
                   op_name(op), op_info(op).outputs);
  return Sym(e, emit_node(e, op, inputs, attrs));
}

Emitter& emitter_of(OpId op, const std::vector<Sym>& inputs) {
  GPUML_CHECK(!inputs.empty(), "{}: emit() without inputs needs an Emitter; use the creation helpers", op_name(op));
  return inputs[0].emitter();
}

bool autocast_bf16(Sym x) { return x.emitter().autocast() == Autocast::bf16; }

Sym as_dtype(Sym x, DType d) { return x.dtype() == d ? x : cast(x, d); }

// NumPy-style promotion: both sides meet in promote_types before a binary op. Under bf16
// autocast, bf16 meeting f32 stays bf16 (an activation plus a bias is still an activation).
std::pair<Sym, Sym> promoted(Sym a, Sym b) {
  if (a.dtype() == b.dtype()) return {a, b};
  DType d = promote_types(a.dtype(), b.dtype());
  if (autocast_bf16(a) && d == DType::f32 && (a.dtype() == DType::bf16 || b.dtype() == DType::bf16)) d = DType::bf16;
  return {as_dtype(a, d), as_dtype(b, d)};
}

// Under bf16 autocast: an f32 input of a matmul or conv2d in bf16. As in torch.autocast, f64 is
// left alone: who asks for f64 wants it.
Sym autocast_low(Sym x) { return autocast_bf16(x) && x.dtype() == DType::f32 ? cast(x, DType::bf16) : x; }
// Under bf16 autocast: the input of a reduction, loss or norm back in f32.
Sym autocast_high(Sym x) { return autocast_bf16(x) && x.dtype() == DType::bf16 ? cast(x, DType::f32) : x; }

Sym binary(OpId op, Sym a, Sym b) {
  auto [pa, pb] = promoted(a, b);
  return emit(op, {pa, pb});
}

Attrs reduce_attrs(std::vector<int64_t> axes, bool keepdim) {
  Attrs a;
  a.axes = std::move(axes);
  a.keepdim = keepdim;
  return a;
}

Attrs window_attrs(int64_t kernel, int64_t stride, int64_t padding) {
  Attrs a;
  a.kernel = {kernel, kernel};
  int64_t s = stride == 0 ? kernel : stride;
  a.stride = {s, s};
  a.padding = {padding, padding};
  return a;
}

}  // namespace

Sym emit(OpId op, const std::vector<Sym>& inputs, const Attrs& attrs) {
  return emit_on(emitter_of(op, inputs), op, inputs, attrs);
}

std::vector<Sym> emit_outputs(OpId op, const std::vector<Sym>& inputs, const Attrs& attrs) {
  Emitter& e = emitter_of(op, inputs);
  const int first = emit_node(e, op, inputs, attrs);
  std::vector<Sym> outputs;
  for (int i = 0; i < op_info(op).outputs; ++i) outputs.emplace_back(e, first + i);
  return outputs;
}

Sym fill(Emitter& e, const Shape& shape, double value, DType dtype) {
  Attrs a;
  a.shape = shape;
  a.value = value;
  a.dtype = dtype;
  return emit_on(e, OpId::fill, {}, a);
}

Sym scalar_like(Sym like, double value) { return fill(like.emitter(), {}, value, like.dtype()); }

Sym arange(Emitter& e, int64_t n, DType dtype, double start, double step) {
  Attrs a;
  a.shape = {n};
  a.dtype = dtype;
  a.alpha = start;
  a.beta = step;
  return emit_on(e, OpId::arange, {}, a);
}

Sym neg(Sym x) { return emit(OpId::neg, {x}); }
Sym abs(Sym x) { return emit(OpId::abs, {x}); }
Sym sign(Sym x) { return emit(OpId::sign, {x}); }
Sym exp(Sym x) { return emit(OpId::exp, {x}); }
Sym log(Sym x) { return emit(OpId::log, {x}); }
Sym sqrt(Sym x) { return emit(OpId::sqrt, {x}); }
Sym rsqrt(Sym x) { return emit(OpId::rsqrt, {x}); }
Sym tanh(Sym x) { return emit(OpId::tanh, {x}); }
Sym sigmoid(Sym x) { return emit(OpId::sigmoid, {x}); }
Sym relu(Sym x) { return emit(OpId::relu, {x}); }
Sym gelu(Sym x, bool tanh_approximation) {
  Attrs a;
  a.gelu_tanh = tanh_approximation;
  return emit(OpId::gelu, {x}, a);
}
Sym cast(Sym x, DType dtype) {
  Attrs a;
  a.dtype = dtype;
  return emit(OpId::cast, {x}, a);
}
Sym copy(Sym x) { return emit(OpId::copy, {x}); }

Sym add(Sym a, Sym b) { return binary(OpId::add, a, b); }
Sym sub(Sym a, Sym b) { return binary(OpId::sub, a, b); }
Sym mul(Sym a, Sym b) { return binary(OpId::mul, a, b); }
Sym div(Sym a, Sym b) { return binary(OpId::div, a, b); }
Sym pow(Sym a, Sym b) { return binary(OpId::pow, a, b); }
Sym maximum(Sym a, Sym b) { return binary(OpId::maximum, a, b); }
Sym minimum(Sym a, Sym b) { return binary(OpId::minimum, a, b); }
Sym eq(Sym a, Sym b) { return binary(OpId::eq, a, b); }
Sym ne(Sym a, Sym b) { return binary(OpId::ne, a, b); }
Sym lt(Sym a, Sym b) { return binary(OpId::lt, a, b); }
Sym le(Sym a, Sym b) { return binary(OpId::le, a, b); }
Sym gt(Sym a, Sym b) { return binary(OpId::gt, a, b); }
Sym ge(Sym a, Sym b) { return binary(OpId::ge, a, b); }
Sym where(Sym cond, Sym a, Sym b) {
  auto [pa, pb] = promoted(a, b);
  return emit(OpId::where, {cond, pa, pb});
}
Sym mul_scalar(Sym x, double s) { return emit(OpId::mul, {x, scalar_like(x, s)}); }
Sym add_scalar(Sym x, double s) { return emit(OpId::add, {x, scalar_like(x, s)}); }

Sym sum(Sym x, std::vector<int64_t> axes, bool keepdim) {
  return emit(OpId::sum, {autocast_high(x)}, reduce_attrs(std::move(axes), keepdim));
}
Sym mean(Sym x, std::vector<int64_t> axes, bool keepdim) {
  return emit(OpId::mean, {autocast_high(x)}, reduce_attrs(std::move(axes), keepdim));
}
Sym max(Sym x, std::vector<int64_t> axes, bool keepdim) {
  return emit(OpId::max, {x}, reduce_attrs(std::move(axes), keepdim));
}
Sym argmax(Sym x, int64_t axis, bool keepdim) {
  Attrs a;
  a.axis = axis;
  a.keepdim = keepdim;
  return emit(OpId::argmax, {x}, a);
}
Sym softmax(Sym x, int64_t axis) {
  Attrs a;
  a.axis = axis;
  return emit(OpId::softmax, {autocast_high(x)}, a);
}
Sym log_softmax(Sym x, int64_t axis) {
  Attrs a;
  a.axis = axis;
  return emit(OpId::log_softmax, {autocast_high(x)}, a);
}

Sym matmul(Sym a, Sym b, bool trans_a, bool trans_b) {
  Attrs at;
  at.trans_a = trans_a;
  at.trans_b = trans_b;
  auto [pa, pb] = promoted(autocast_low(a), autocast_low(b));
  return emit(OpId::matmul, {pa, pb}, at);
}

Attrs conv_attrs(int64_t stride, int64_t padding, int64_t dilation, int64_t groups) {
  Attrs a;
  a.stride = {stride, stride};
  a.padding = {padding, padding};
  a.dilation = {dilation, dilation};
  a.groups = groups;
  return a;
}
Sym conv2d(Sym x, Sym w, const Attrs& conv) {
  return emit(OpId::conv2d, {autocast_low(x), autocast_low(w)}, conv);
}

Sym max_pool2d(Sym x, int64_t kernel, int64_t stride, int64_t padding) {
  return emit(OpId::max_pool2d, {x}, window_attrs(kernel, stride, padding));
}
Sym avg_pool2d(Sym x, int64_t kernel, int64_t stride, int64_t padding, bool count_include_pad) {
  Attrs a = window_attrs(kernel, stride, padding);
  a.count_include_pad = count_include_pad;
  return emit(OpId::avg_pool2d, {x}, a);
}

Sym cross_entropy(Sym logits, Sym labels, int64_t ignore_index) {
  Attrs a;
  a.ignore_index = ignore_index;
  return emit_outputs(OpId::cross_entropy, {autocast_high(logits), labels}, a)[0];  // loss; lse for the backward
}
Sym layer_norm(Sym x, Sym weight, Sym bias, int64_t first_axis, double eps) {
  Attrs a;
  a.axis = first_axis;
  a.eps = eps;
  // Under autocast a bf16 x stays bf16 beside f32 parameters: the kernels compute in f32, so the
  // casts of x up and of y back down (for the next matmul) are saved.
  const bool mixed = autocast_bf16(x) && x.dtype() == DType::bf16 && weight.dtype() == DType::f32;
  return emit_outputs(OpId::layer_norm, {mixed ? x : autocast_high(x), weight, bias}, a)[0];  // y; (mean, rstd) kept
}
Attrs attention_attrs(bool causal, double dropout_p, uint64_t seed, uint64_t offset, bool training, double scale) {
  Attrs a;
  a.causal = causal;
  a.p = dropout_p;
  a.seed = seed;
  a.offset = offset;
  a.training = training;
  a.scale = scale;
  return a;
}
Sym attention(Sym q, Sym k, Sym v, bool causal, double dropout_p, uint64_t seed, uint64_t offset, bool training,
              double scale) {
  const Attrs a = attention_attrs(causal, dropout_p, seed, offset, training, scale);
  // Under autocast attention takes bf16 q, k, v, as torch.autocast's lower-precision list has
  // scaled_dot_product_attention: every backend's kernel accumulates in f32 and keeps lse in f32.
  return emit_outputs(OpId::attention, {autocast_low(q), autocast_low(k), autocast_low(v)}, a)[0];  // o; lse for the backward
}
Sym batch_norm(Sym x, Sym weight, Sym bias, Sym running_mean, Sym running_var, bool training, double eps) {
  Attrs a;
  a.training = training;
  a.eps = eps;
  return emit(OpId::batch_norm, {autocast_high(x), weight, bias, running_mean, running_var}, a);
}
Sym all_reduce_sum(Sym x) { return emit(OpId::all_reduce_sum, {x}); }
Sym dropout(Sym x, double p, uint64_t seed, uint64_t offset, bool training) {
  Attrs a;
  a.p = p;
  a.seed = seed;
  a.offset = offset;
  a.training = training;
  return emit(OpId::dropout, {x}, a);
}
Sym uniform(Emitter& e, const Shape& shape, DType dtype, double low, double high, uint64_t seed, uint64_t offset) {
  Attrs a;
  a.shape = shape;
  a.dtype = dtype;
  a.alpha = low;
  a.beta = high;
  a.seed = seed;
  a.offset = offset;
  return emit_on(e, OpId::uniform, {}, a);
}
Sym normal(Emitter& e, const Shape& shape, DType dtype, double mean, double stddev, uint64_t seed, uint64_t offset) {
  Attrs a;
  a.shape = shape;
  a.dtype = dtype;
  a.alpha = mean;
  a.beta = stddev;
  a.seed = seed;
  a.offset = offset;
  return emit_on(e, OpId::normal, {}, a);
}
Sym embedding(Sym weight, Sym indices) { return emit(OpId::embedding, {weight, indices}); }

Sym reshape(Sym x, const Shape& shape) {
  Attrs a;
  a.shape = shape;
  return emit(OpId::reshape, {x}, a);
}
Sym permute(Sym x, std::vector<int64_t> axes) {
  Attrs a;
  a.axes = std::move(axes);
  return emit(OpId::permute, {x}, a);
}
Sym transpose(Sym x, int64_t a, int64_t b) {
  std::vector<int64_t> axes(x.ndim());
  std::iota(axes.begin(), axes.end(), 0);
  std::swap(axes[normalize_axis(a, x.ndim(), "transpose")], axes[normalize_axis(b, x.ndim(), "transpose")]);
  return permute(x, std::move(axes));
}
Sym slice(Sym x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  Attrs a;
  a.axes = {axis};
  a.starts = {start};
  a.ends = {end};
  a.steps = {step};
  return emit(OpId::slice, {x}, a);
}
Sym broadcast_to(Sym x, const Shape& shape) {
  Attrs a;
  a.shape = shape;
  return emit(OpId::broadcast_to, {x}, a);
}
Sym concat(const std::vector<Sym>& xs, int64_t axis) {
  Attrs a;
  a.axis = axis;
  return emit(OpId::concat, xs, a);
}
Sym pad(Sym x, std::vector<int64_t> pads, double value) {
  Attrs a;
  a.pads = std::move(pads);
  a.value = value;
  return emit(OpId::pad, {x}, a);
}
Sym flatten(Sym x, int64_t first_axis) {
  int nd = x.ndim();
  int first = nd == 0 ? 0 : normalize_axis(first_axis, nd, "flatten");
  Shape s(x.shape().begin(), x.shape().begin() + first);
  s.push_back(numel(Shape(x.shape().begin() + first, x.shape().end())));
  return reshape(x, s);
}

Sym reduce_to_shape(Sym g, const Shape& shape) {
  const Shape& gs = g.shape();
  if (gs == shape) return g;
  GPUML_CHECK_SHAPE(gs.size() >= shape.size(), "reduce_to_shape: {} has fewer dims than target {}",
                    shape_str(gs), shape_str(shape));
  size_t lead = gs.size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t i = 0; i < gs.size(); ++i) {
    if (i < lead) {
      axes.push_back(static_cast<int64_t>(i));
      continue;
    }
    int64_t want = shape[i - lead];
    GPUML_CHECK_SHAPE(want == gs[i] || want == 1, "reduce_to_shape: {} does not broadcast from {}",
                      shape_str(gs), shape_str(shape));
    if (want == 1 && gs[i] != 1) axes.push_back(static_cast<int64_t>(i));
  }
  // sum() with no axes means "all axes", so skip it when nothing is reduced.
  Sym reduced = axes.empty() ? g : sum(g, axes, /*keepdim*/ false);
  return reduced.shape() == shape ? reduced : reshape(reduced, shape);
}

}  // namespace gpuml
