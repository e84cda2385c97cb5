#include "ops/type_rules.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/tensor.h"

namespace gpuml {

namespace {

#define CHECK_DTYPE(cond, ...) GPUML_CHECK_KIND(ErrorKind::DType, cond, __VA_ARGS__)

void check_arity(OpId op, size_t n) {
  int arity = op_info(op).arity;
  if (arity < 0) {
    GPUML_CHECK(n >= 1, "{}: needs at least one input", op_name(op));
  } else {
    GPUML_CHECK(static_cast<int>(n) == arity, "{}: takes {} inputs, got {}", op_name(op), arity, n);
  }
}

void require_float(OpId op, const TensorType& t, const char* which = "input") {
  CHECK_DTYPE(is_floating(t.dtype), "{}: {} must be a floating dtype (f32 f64 bf16 f16), got {}",
              op_name(op), which, t.dtype);
}

void require_numeric(OpId op, const TensorType& t) {
  CHECK_DTYPE(t.dtype != DType::boolean, "{}: bool input is not supported; cast it first", op_name(op));
}

void require_index(OpId op, const TensorType& t, const char* which) {
  CHECK_DTYPE(t.dtype == DType::i32 || t.dtype == DType::i64, "{}: {} must be i32 or i64, got {}",
              op_name(op), which, t.dtype);
}

void require_same_dtype(OpId op, const TensorType& a, const TensorType& b) {
  CHECK_DTYPE(a.dtype == b.dtype, "{}: inputs have different dtypes {} and {}; cast one first", op_name(op),
              a.dtype, b.dtype);
}

void require_rank(OpId op, const TensorType& t, int rank, const char* which) {
  GPUML_CHECK_SHAPE(static_cast<int>(t.shape.size()) == rank, "{}: {} must have {} dims, got shape {}",
                    op_name(op), which, rank, shape_str(t.shape));
}

void check_window(OpId op, const Attrs& a) {
  for (int i = 0; i < 2; ++i) {
    GPUML_CHECK(a.stride[i] >= 1 && a.dilation[i] >= 1 && a.padding[i] >= 0 && a.kernel[i] >= 1,
                "{}: stride, dilation and kernel must be >= 1 and padding >= 0", op_name(op));
  }
}

Shape reduce_shape(const Shape& in, const std::vector<bool>& reduced, bool keepdim) {
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!reduced[i]) out.push_back(in[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Shape conv_output(OpId op, const Shape& x, const Shape& w, const Attrs& a) {
  check_window(op, a);
  GPUML_CHECK(a.groups >= 1, "{}: groups must be >= 1", op_name(op));
  GPUML_CHECK_SHAPE(x[1] % a.groups == 0 && w[0] % a.groups == 0,
                    "{}: channels {} and filters {} must both divide by groups {}", op_name(op), x[1], w[0],
                    a.groups);
  GPUML_CHECK_SHAPE(w[1] * a.groups == x[1],
                    "{}: input has {} channels but weight {} expects {} (groups {})", op_name(op), x[1],
                    shape_str(w), w[1] * a.groups, a.groups);
  int64_t oh = window_out_size(x[2], w[2], a.stride[0], a.padding[0], a.dilation[0]);
  int64_t ow = window_out_size(x[3], w[3], a.stride[1], a.padding[1], a.dilation[1]);
  GPUML_CHECK_SHAPE(oh > 0 && ow > 0, "{}: input {} is too small for kernel {}x{}", op_name(op),
                    shape_str(x), w[2], w[3]);
  return {x[0], w[0], oh, ow};
}

Shape pool_output(OpId op, const Shape& x, const Attrs& a) {
  check_window(op, a);
  for (int i = 0; i < 2; ++i)
    GPUML_CHECK(a.padding[i] * 2 <= a.kernel[i], "{}: padding {} must be at most half the kernel {}",
                op_name(op), a.padding[i], a.kernel[i]);
  int64_t oh = window_out_size(x[2], a.kernel[0], a.stride[0], a.padding[0], a.dilation[0]);
  int64_t ow = window_out_size(x[3], a.kernel[1], a.stride[1], a.padding[1], a.dilation[1]);
  GPUML_CHECK_SHAPE(oh > 0 && ow > 0, "{}: input {} is too small for a {}x{} window", op_name(op),
                    shape_str(x), a.kernel[0], a.kernel[1]);
  return {x[0], x[1], oh, ow};
}

// sgd_update / adam_update (state (S, P), grad (P,), hyper (3,) or (4,), decay (P,)) -> state; hyper[3],
// when there, multiplies the gradient first (global-norm clipping's factor). The state rows are
// fixed by the op and its attributes, so a trainer that sized its buffer for another setting
// fails here, while building the graph.
TensorType optimizer_type(OpId op, std::span<const TensorType> in, const Attrs& a) {
  const TensorType &state = in[0], &grad = in[1], &hyper = in[2], &decay = in[3];
  CHECK_DTYPE(state.dtype == DType::f32 || state.dtype == DType::f64,
              "{}: state must be f32 or f64, got {}", op_name(op), state.dtype);
  CHECK_DTYPE(grad.dtype == state.dtype && hyper.dtype == state.dtype && decay.dtype == state.dtype,
              "{}: state, grad, hyper and decay must share a dtype, got {}, {}, {} and {}", op_name(op),
              state.dtype, grad.dtype, hyper.dtype, decay.dtype);
  require_rank(op, state, 2, "state (rows, P)");
  require_rank(op, grad, 1, "grad (P,)");
  require_rank(op, decay, 1, "decay (P,)");
  GPUML_CHECK_SHAPE(hyper.shape == Shape{3} || hyper.shape == Shape{4},
                    "{}: hyper must have shape (3,) = [lr, 1-beta1^t, 1-beta2^t] or (4,) with a gradient scale, got {}",
                    op_name(op), shape_str(hyper.shape));
  GPUML_CHECK_SHAPE(grad.shape[0] == state.shape[1], "{}: grad {} has {} elements but the state {} holds P = {}",
                    op_name(op), shape_str(grad.shape), grad.shape[0], shape_str(state.shape), state.shape[1]);
  GPUML_CHECK_SHAPE(decay.shape[0] == state.shape[1],
                    "{}: decay {} (one weight-decay multiplier per state column) has {} elements but the state {} "
                    "holds P = {}",
                    op_name(op), shape_str(decay.shape), decay.shape[0], shape_str(state.shape), state.shape[1]);
  GPUML_CHECK(a.weight_decay >= 0.0, "{}: weight_decay must be >= 0, got {}", op_name(op), a.weight_decay);
  int64_t rows = 3;
  const char* layout = "param, m, v";
  if (op == OpId::sgd_update) {
    GPUML_CHECK(a.momentum >= 0.0, "sgd_update: momentum must be >= 0, got {}", a.momentum);
    GPUML_CHECK(!a.nesterov || a.momentum > 0.0, "sgd_update: nesterov needs momentum > 0");
    rows = a.momentum > 0.0 ? 2 : 1;
    layout = rows == 2 ? "param, momentum buffer" : "param";
  } else {
    GPUML_CHECK(a.beta1 >= 0.0 && a.beta1 < 1.0 && a.beta2 >= 0.0 && a.beta2 < 1.0,
                "adam_update: betas must be in [0, 1), got ({}, {})", a.beta1, a.beta2);
    GPUML_CHECK(a.eps >= 0.0, "adam_update: eps must be >= 0, got {}", a.eps);
  }
  GPUML_CHECK_SHAPE(state.shape[0] == rows, "{}: state has {} rows, expected {} ({}{})", op_name(op), state.shape[0],
                    rows, layout, op == OpId::sgd_update ? fmt::format(" for momentum {}", a.momentum) : "");
  return state;
}

}  // namespace

std::vector<bool> reduced_axes(const Attrs& attrs, int ndim, const char* what) {
  std::vector<bool> reduced(ndim, attrs.axes.empty());
  for (int64_t a : attrs.axes) {
    int ax = normalize_axis(a, ndim, what);
    GPUML_CHECK_SHAPE(!reduced[ax], "{}: axis {} listed twice", what, a);
    reduced[ax] = true;
  }
  return reduced;
}

SliceDims normalize_slice(const Shape& in, const Attrs& a) {
  GPUML_CHECK(a.starts.size() == a.axes.size() && a.ends.size() == a.axes.size() &&
                  (a.steps.empty() || a.steps.size() == a.axes.size()),
              "slice: axes, starts, ends (and steps) must have the same length");
  SliceDims d;
  int nd = static_cast<int>(in.size());
  d.start.assign(nd, 0);
  d.step.assign(nd, 1);
  d.size = in;
  std::vector<bool> seen(nd, false);
  for (size_t i = 0; i < a.axes.size(); ++i) {
    int ax = normalize_axis(a.axes[i], nd, "slice");
    GPUML_CHECK_SHAPE(!seen[ax], "slice: axis {} listed twice", a.axes[i]);
    seen[ax] = true;
    int64_t step = a.steps.empty() ? 1 : a.steps[i];
    GPUML_CHECK(step >= 1, "slice: step must be >= 1, got {}", step);
    int64_t n = in[ax], start = a.starts[i], end = a.ends[i];
    if (start < 0) start += n;
    if (end < 0) end += n;
    start = std::clamp<int64_t>(start, 0, n);
    end = std::clamp<int64_t>(end, start, n);
    d.start[ax] = start;
    d.step[ax] = step;
    d.size[ax] = (end - start + step - 1) / step;
  }
  return d;
}

int64_t window_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  int64_t span = dilation * (kernel - 1) + 1;
  int64_t room = in + 2 * padding - span;
  return room < 0 ? 0 : room / stride + 1;
}

MatmulDims matmul_dims(const Shape& a, const Shape& b, const Attrs& attrs) {
  GPUML_CHECK_SHAPE(a.size() >= 2 && b.size() >= 2, "matmul: inputs need at least 2 dims, got {} and {}",
                    shape_str(a), shape_str(b));
  size_t na = a.size(), nb = b.size();
  MatmulDims d;
  d.m = attrs.trans_a ? a[na - 1] : a[na - 2];
  int64_t ka = attrs.trans_a ? a[na - 2] : a[na - 1];
  int64_t kb = attrs.trans_b ? b[nb - 1] : b[nb - 2];
  d.n = attrs.trans_b ? b[nb - 2] : b[nb - 1];
  GPUML_CHECK_SHAPE(ka == kb, "matmul: inner dims differ: {}{} x {}{} ({} vs {})", shape_str(a),
                    attrs.trans_a ? "^T" : "", shape_str(b), attrs.trans_b ? "^T" : "", ka, kb);
  d.k = ka;
  d.batch = broadcast_shapes(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2), "matmul batch");
  return d;
}

namespace {

// attention(q, k, v): q (B, H, Tq, D), k and v (B, H, Tk, D), one float dtype; returns o's type.
TensorType attention_output_type(OpId op, std::span<const TensorType> in, const Attrs& a) {
  const TensorType &q = in[0], &k = in[1], &v = in[2];
  require_float(op, q);
  require_same_dtype(op, q, k);
  require_same_dtype(op, q, v);
  require_rank(op, q, 4, "q (B, H, Tq, D)");
  require_rank(op, k, 4, "k (B, H, Tk, D)");
  require_rank(op, v, 4, "v (B, H, Tk, D)");
  GPUML_CHECK_SHAPE(k.shape[0] == q.shape[0] && k.shape[1] == q.shape[1] && k.shape[3] == q.shape[3],
                    "{}: k {} must be (B, H, Tk, D) for q {}: same batch, heads and head dim", op_name(op),
                    shape_str(k.shape), shape_str(q.shape));
  GPUML_CHECK_SHAPE(v.shape == k.shape, "{}: v {} must have k's shape {}", op_name(op), shape_str(v.shape),
                    shape_str(k.shape));
  GPUML_CHECK_SHAPE(k.shape[2] >= 1 || numel(q.shape) == 0, "{}: no keys (Tk = 0) for {} queries", op_name(op),
                    q.shape[2]);
  GPUML_CHECK_SHAPE(!a.causal || q.shape[2] <= k.shape[2],
                    "{}: causal with Tq {} > Tk {}: the first {} queries would see no key (causal aligns the "
                    "last query with the last key)", op_name(op), q.shape[2], k.shape[2], q.shape[2] - k.shape[2]);
  GPUML_CHECK(std::isfinite(a.scale), "{}: scale must be finite (0 means 1/sqrt(D)), got {}", op_name(op), a.scale);
  GPUML_CHECK(a.p >= 0.0 && a.p < 1.0, "{}: dropout p must be in [0, 1), got {}", op_name(op), a.p);
  return q;
}

// The type of the op's output 0 (its only output for all but a few ops).
TensorType first_output_type(OpId op, std::span<const TensorType> in, const Attrs& a) {
  check_arity(op, in.size());
  const OpInfo& info = op_info(op);
  switch (info.kind) {
    case OpKind::Unary: {
      const TensorType& x = in[0];
      if (op == OpId::cast) return {x.shape, a.dtype};
      if (op == OpId::copy) return x;
      if (op == OpId::neg || op == OpId::abs || op == OpId::sign || op == OpId::relu) require_numeric(op, x);
      else require_float(op, x);
      return x;
    }
    case OpKind::Binary:
    case OpKind::Compare: {
      require_same_dtype(op, in[0], in[1]);
      if (op == OpId::pow) require_float(op, in[0]);
      if (info.kind == OpKind::Binary && op != OpId::maximum && op != OpId::minimum) require_numeric(op, in[0]);
      Shape s = broadcast_shapes(in[0].shape, in[1].shape, std::string(op_name(op)).c_str());
      return {s, info.kind == OpKind::Compare ? DType::boolean : in[0].dtype};
    }
    case OpKind::Ternary: {  // where(cond, a, b)
      CHECK_DTYPE(in[0].dtype == DType::boolean, "where: condition must be bool, got {}", in[0].dtype);
      require_same_dtype(op, in[1], in[2]);
      Shape s = broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, "where"), in[2].shape, "where");
      return {s, in[1].dtype};
    }
    case OpKind::Reduce: {
      const TensorType& x = in[0];
      require_numeric(op, x);
      int nd = static_cast<int>(x.shape.size());
      if (op == OpId::argmax) {
        GPUML_CHECK_SHAPE(nd >= 1, "argmax: needs at least one dim");
        int ax = normalize_axis(a.axis, nd, "argmax");
        GPUML_CHECK_SHAPE(x.shape[ax] > 0, "argmax: axis {} of {} is empty", ax, shape_str(x.shape));
        std::vector<bool> red(nd, false);
        red[ax] = true;
        return {reduce_shape(x.shape, red, a.keepdim), DType::i64};
      }
      if (op == OpId::mean) require_float(op, x);
      std::vector<bool> red = reduced_axes(a, nd, std::string(op_name(op)).c_str());
      if (op == OpId::max)
        for (int i = 0; i < nd; ++i)
          GPUML_CHECK_SHAPE(!red[i] || x.shape[i] > 0, "max: reducing empty axis {} of {}", i,
                            shape_str(x.shape));
      return {reduce_shape(x.shape, red, a.keepdim), x.dtype};
    }
    case OpKind::Softmax: {
      require_float(op, in[0]);
      normalize_axis(a.axis, static_cast<int>(in[0].shape.size()), std::string(op_name(op)).c_str());
      return in[0];
    }
    case OpKind::Matmul: {
      require_same_dtype(op, in[0], in[1]);
      require_float(op, in[0]);
      MatmulDims d = matmul_dims(in[0].shape, in[1].shape, a);
      if (op == OpId::matmul_bias_act) {
        require_rank(op, in[0], 2, "a (M, K)");
        require_rank(op, in[1], 2, "b (K, N)");
        require_same_dtype(op, in[0], in[2]);
        GPUML_CHECK_SHAPE(in[2].shape == Shape{d.n}, "matmul_bias_act: bias must be ({}) for {} columns, got {}",
                          d.n, d.n, shape_str(in[2].shape));
      }
      if (op == OpId::matmul_dact) {
        require_rank(op, in[0], 2, "a (M, K)");
        require_rank(op, in[1], 2, "b (K, N)");
        require_same_dtype(op, in[0], in[2]);
        GPUML_CHECK_SHAPE(in[2].shape == (Shape{d.m, d.n}), "matmul_dact: aux must be the product's shape ({}, {}), got {}",
                          d.m, d.n, shape_str(in[2].shape));
        GPUML_CHECK(a.activation != Activation::none, "matmul_dact: activation must be relu or gelu");
      }
      if (op == OpId::matmul_bgrad) {
        // Output 0 is the product op(a) @ op(b), (m, n); output 1 (infer_types) the sums over
        // the rows of a (axis 0: a must be (k, m), trans_a) or of b (axis 1: b (k, n), no trans_b).
        require_rank(op, in[0], 2, "a");
        require_rank(op, in[1], 2, "b");
        GPUML_CHECK_SHAPE(a.axis == 0 ? a.trans_a : a.axis == 1 && !a.trans_b,
                          "matmul_bgrad: axis {} needs the summed operand's rows to be the inner dim (axis 0: "
                          "trans_a; axis 1: no trans_b)", a.axis);
      }
      Shape s = d.batch;
      s.push_back(d.m);
      s.push_back(d.n);
      return {s, in[0].dtype};
    }
    case OpKind::Conv: {
      require_same_dtype(op, in[0], in[1]);
      require_float(op, in[0]);
      require_rank(op, in[0], 4, "input (N, C, H, W)");
      require_rank(op, in[1], 4, "weight (O, C/groups, kH, kW)");
      if (op == OpId::conv2d_bias_act) {
        require_same_dtype(op, in[0], in[2]);
        GPUML_CHECK_SHAPE(in[2].shape == Shape{in[1].shape[0]}, "conv2d_bias_act: bias must be ({}) for {} filters, got {}",
                          in[1].shape[0], in[1].shape[0], shape_str(in[2].shape));
      }
      return {conv_output(op, in[0].shape, in[1].shape, a), in[0].dtype};
    }
    case OpKind::Pool: {
      require_float(op, in[0]);
      require_rank(op, in[0], 4, "input (N, C, H, W)");
      return {pool_output(op, in[0].shape, a), in[0].dtype};
    }
    case OpKind::Loss: {  // cross_entropy(logits (N, C), labels (N,)) -> mean over kept rows
      require_float(op, in[0]);
      require_rank(op, in[0], 2, "logits (N, C)");
      require_index(op, in[1], "labels");
      require_rank(op, in[1], 1, "labels (N,)");
      GPUML_CHECK_SHAPE(in[1].shape[0] == in[0].shape[0], "cross_entropy: {} logits rows but {} labels",
                        in[0].shape[0], in[1].shape[0]);
      return {{}, in[0].dtype};
    }
    case OpKind::Norm: {
      const TensorType& x = in[0];
      require_float(op, x);
      int nd = static_cast<int>(x.shape.size());
      if (op == OpId::layer_norm) {
        int ax = normalize_axis(a.axis, nd, "layer_norm");
        Shape norm_shape(x.shape.begin() + ax, x.shape.end());
        // weight and bias: x's dtype, or f32 for a bf16/f16 x (mixed precision: f32 parameters
        // read by a kernel that computes in f32 anyway, as PyTorch's CPU layer_norm allows).
        const bool mixed = (x.dtype == DType::bf16 || x.dtype == DType::f16) && in[1].dtype == DType::f32;
        require_same_dtype(op, in[1], in[2]);
        for (int i = 1; i <= 2; ++i) {
          if (!mixed) require_same_dtype(op, x, in[i]);
          GPUML_CHECK_SHAPE(in[i].shape == norm_shape, "layer_norm: {} has shape {}, expected {}",
                            i == 1 ? "weight" : "bias", shape_str(in[i].shape), shape_str(norm_shape));
        }
      } else {  // batch_norm(x, weight, bias, running_mean, running_var)
        GPUML_CHECK_SHAPE(nd >= 2, "batch_norm: input needs (N, C, ...) dims, got {}", shape_str(x.shape));
        static const char* names[] = {"", "weight", "bias", "running_mean", "running_var"};
        for (int i = 1; i <= 4; ++i) {
          require_same_dtype(op, x, in[i]);
          GPUML_CHECK_SHAPE(in[i].shape == Shape{x.shape[1]}, "batch_norm: {} has shape {}, expected ({},)",
                            names[i], shape_str(in[i].shape), x.shape[1]);
        }
      }
      return x;
    }
    case OpKind::Random: {
      if (op == OpId::dropout) {
        require_float(op, in[0]);
        GPUML_CHECK(a.p >= 0.0 && a.p < 1.0, "dropout: p must be in [0, 1), got {}", a.p);
        return in[0];
      }
      CHECK_DTYPE(is_floating(a.dtype), "{}: dtype must be floating, got {}", op_name(op), a.dtype);
      for (int64_t d : a.shape) GPUML_CHECK_SHAPE(d >= 0, "{}: negative dim in {}", op_name(op), shape_str(a.shape));
      if (op == OpId::uniform) GPUML_CHECK(a.alpha <= a.beta, "uniform: low {} > high {}", a.alpha, a.beta);
      if (op == OpId::normal) GPUML_CHECK(a.beta >= 0, "normal: std must be >= 0, got {}", a.beta);
      return {a.shape, a.dtype};
    }
    case OpKind::Gather: {  // embedding(weight (V, D), indices (...)) -> (..., D)
      require_rank(op, in[0], 2, "weight (V, D)");
      require_index(op, in[1], "indices");
      Shape s = in[1].shape;
      s.push_back(in[0].shape[1]);
      return {s, in[0].dtype};
    }
    case OpKind::Creation: {
      for (int64_t d : a.shape) GPUML_CHECK_SHAPE(d >= 0, "{}: negative dim in {}", op_name(op), shape_str(a.shape));
      if (op == OpId::arange)
        GPUML_CHECK_SHAPE(a.shape.size() == 1, "arange: shape must be (n,), got {}", shape_str(a.shape));
      return {a.shape, a.dtype};
    }
    case OpKind::Movement: {
      const TensorType& x = in[0];
      int nd = static_cast<int>(x.shape.size());
      switch (op) {
        case OpId::reshape: return {infer_reshape(a.shape, numel(x.shape)), x.dtype};
        case OpId::permute: {
          GPUML_CHECK_SHAPE(static_cast<int>(a.axes.size()) == nd, "permute: {} axes for {} dims", a.axes.size(), nd);
          Shape s(nd);
          std::vector<bool> seen(nd, false);
          for (int i = 0; i < nd; ++i) {
            int ax = normalize_axis(a.axes[i], nd, "permute");
            GPUML_CHECK_SHAPE(!seen[ax], "permute: axis {} repeated", ax);
            seen[ax] = true;
            s[i] = x.shape[ax];
          }
          return {s, x.dtype};
        }
        case OpId::slice: return {normalize_slice(x.shape, a).size, x.dtype};
        case OpId::broadcast_to: {
          broadcast_strides(x.shape, contiguous_strides(x.shape), a.shape);  // checks
          return {a.shape, x.dtype};
        }
        case OpId::concat: {
          int ax = normalize_axis(a.axis, nd, "concat");
          Shape s = x.shape;
          for (size_t i = 1; i < in.size(); ++i) {
            require_same_dtype(op, x, in[i]);
            GPUML_CHECK_SHAPE(in[i].shape.size() == x.shape.size(), "concat: input {} has {} dims, input 0 has {}",
                              i, in[i].shape.size(), nd);
            for (int d = 0; d < nd; ++d)
              GPUML_CHECK_SHAPE(d == ax || in[i].shape[d] == x.shape[d],
                                "concat: input {} has shape {}, input 0 {}: only axis {} may differ", i,
                                shape_str(in[i].shape), shape_str(x.shape), ax);
            s[ax] += in[i].shape[ax];
          }
          return {s, x.dtype};
        }
        case OpId::pad: {
          GPUML_CHECK_SHAPE(static_cast<int>(a.pads.size()) == 2 * nd,
                            "pad: needs 2 pads (before, after) per dim: {} for {} dims", a.pads.size(), nd);
          Shape s = x.shape;
          for (int d = 0; d < nd; ++d) {
            GPUML_CHECK(a.pads[2 * d] >= 0 && a.pads[2 * d + 1] >= 0, "pad: pads must be >= 0");
            s[d] += a.pads[2 * d] + a.pads[2 * d + 1];
          }
          return {s, x.dtype};
        }
        default: break;
      }
      break;
    }
    case OpKind::Collective: {  // all_reduce_sum: every rank's x summed, same shape and dtype
      require_float(op, in[0]);
      return in[0];
    }
    case OpKind::Optimizer: return optimizer_type(op, in, a);
    case OpKind::Attention: return attention_output_type(op, in, a);
    case OpKind::Backward: {
      // Every backward op computes a gradient: floating inputs of one dtype (indices/labels aside;
      // layer_norm_backward's weight may be f32 beside bf16/f16, as layer_norm's: its own case).
      if (op != OpId::embedding_backward && op != OpId::cross_entropy_backward) {
        require_float(op, in[0]);
        if (in.size() > 1 && op != OpId::layer_norm_backward) require_same_dtype(op, in[0], in[1]);
      }
      switch (op) {
        case OpId::conv2d_backward_data: {  // (dy, w) -> dx of attrs.shape
          require_rank(op, in[0], 4, "dy");
          require_rank(op, in[1], 4, "weight");
          GPUML_CHECK_SHAPE(a.shape.size() == 4, "conv2d_backward_data: attrs.shape must be the input shape");
          GPUML_CHECK_SHAPE(conv_output(op, a.shape, in[1].shape, a) == in[0].shape,
                            "conv2d_backward_data: dy {} does not match the forward output",
                            shape_str(in[0].shape));
          return {a.shape, in[0].dtype};
        }
        case OpId::conv2d_backward_filter: {  // (x, dy) -> dw of attrs.shape
          require_rank(op, in[0], 4, "x");
          GPUML_CHECK_SHAPE(a.shape.size() == 4, "conv2d_backward_filter: attrs.shape must be the weight shape");
          GPUML_CHECK_SHAPE(conv_output(op, in[0].shape, a.shape, a) == in[1].shape,
                            "conv2d_backward_filter: dy {} does not match the forward output",
                            shape_str(in[1].shape));
          return {a.shape, in[0].dtype};
        }
        case OpId::max_pool2d_backward: {  // (x, dy) -> dx
          require_rank(op, in[0], 4, "x");
          GPUML_CHECK_SHAPE(pool_output(op, in[0].shape, a) == in[1].shape,
                            "max_pool2d_backward: dy {} does not match the forward output",
                            shape_str(in[1].shape));
          return in[0];
        }
        case OpId::avg_pool2d_backward: {  // (dy) -> dx of attrs.shape
          GPUML_CHECK_SHAPE(a.shape.size() == 4, "avg_pool2d_backward: attrs.shape must be the input shape");
          GPUML_CHECK_SHAPE(pool_output(op, a.shape, a) == in[0].shape,
                            "avg_pool2d_backward: dy {} does not match the forward output",
                            shape_str(in[0].shape));
          return {a.shape, in[0].dtype};
        }
        case OpId::cross_entropy_backward: {  // (logits, labels, dloss, lse) -> dlogits
          first_output_type(OpId::cross_entropy, in.subspan(0, 2), a);
          GPUML_CHECK_SHAPE(in[2].shape.empty(), "cross_entropy_backward: dloss must be a scalar");
          const TensorType lse = cross_entropy_lse_type(in[0]);
          GPUML_CHECK_SHAPE(in[3].shape == lse.shape, "cross_entropy_backward: lse is {}, cross_entropy keeps {}",
                            shape_str(in[3].shape), shape_str(lse.shape));
          CHECK_DTYPE(in[3].dtype == lse.dtype, "cross_entropy_backward: lse is {}, cross_entropy keeps {} for {} logits",
                      in[3].dtype, lse.dtype, in[0].dtype);
          return in[0];
        }
        case OpId::layer_norm_backward: {  // (x, weight, dy, mean, rstd) -> dx (then dweight, dbias: infer_types)
          GPUML_CHECK_SHAPE(in[2].shape == in[0].shape, "layer_norm_backward: dy and x shapes differ");
          require_same_dtype(op, in[0], in[2]);
          TensorType tmp[3] = {in[0], in[1], in[1]};
          TensorType dx = first_output_type(OpId::layer_norm, tmp, a);
          const TensorType stats = layer_norm_stats_type(in[0], a);
          for (int i = 3; i <= 4; ++i) {
            const char* name = i == 3 ? "mean" : "rstd";
            GPUML_CHECK_SHAPE(in[i].shape == stats.shape, "layer_norm_backward: {} has shape {}, expected {} (a row's)",
                              name, shape_str(in[i].shape), shape_str(stats.shape));
            CHECK_DTYPE(in[i].dtype == stats.dtype, "layer_norm_backward: {} is {}, layer_norm keeps {} for {} rows",
                        name, in[i].dtype, stats.dtype, in[0].dtype);
          }
          return dx;
        }
        case OpId::attention_backward: {  // (q, k, v, o, do, lse) -> dq (then dk, dv: infer_types)
          const TensorType dq = attention_output_type(op, in.subspan(0, 3), a);
          const char* names[] = {"o", "do"};
          for (int i = 3; i <= 4; ++i) {
            GPUML_CHECK_SHAPE(in[i].shape == dq.shape, "attention_backward: {} has shape {}, expected q's {}",
                              names[i - 3], shape_str(in[i].shape), shape_str(dq.shape));
            require_same_dtype(op, in[0], in[i]);
          }
          const TensorType lse = attention_lse_type(in[0]);
          GPUML_CHECK_SHAPE(in[5].shape == lse.shape, "attention_backward: lse has shape {}, expected {} (B, H, Tq)",
                            shape_str(in[5].shape), shape_str(lse.shape));
          CHECK_DTYPE(in[5].dtype == lse.dtype, "attention_backward: lse is {}, attention keeps {} for {} inputs",
                      in[5].dtype, lse.dtype, in[0].dtype);
          return dq;
        }
        case OpId::batch_norm_backward: {  // (x, weight, dy) -> dx (batch statistics)
          GPUML_CHECK_SHAPE(in[2].shape == in[0].shape, "batch_norm_backward: dy and x shapes differ");
          TensorType tmp[5] = {in[0], in[1], in[1], in[1], in[1]};
          return infer_type(OpId::batch_norm, tmp, a);
        }
        case OpId::gelu_backward: {  // (x, dy) -> dx
          require_float(op, in[0]);
          require_same_dtype(op, in[0], in[1]);
          GPUML_CHECK_SHAPE(in[0].shape == in[1].shape, "gelu_backward: x {} and dy {} differ",
                            shape_str(in[0].shape), shape_str(in[1].shape));
          return in[0];
        }
        case OpId::relu_backward: {  // (y, dy) -> dx, y = relu's output
          require_numeric(op, in[0]);
          require_same_dtype(op, in[0], in[1]);
          GPUML_CHECK_SHAPE(in[0].shape == in[1].shape, "relu_backward: y {} and dy {} differ",
                            shape_str(in[0].shape), shape_str(in[1].shape));
          return in[0];
        }
        case OpId::embedding_backward: {  // (indices, dy) -> dweight of attrs.shape (V, D)
          require_index(op, in[0], "indices");
          GPUML_CHECK_SHAPE(a.shape.size() == 2, "embedding_backward: attrs.shape must be (V, D)");
          Shape expect = in[0].shape;
          expect.push_back(a.shape[1]);
          GPUML_CHECK_SHAPE(in[1].shape == expect, "embedding_backward: dy {} should be {}",
                            shape_str(in[1].shape), shape_str(expect));
          return {a.shape, in[1].dtype};
        }
        case OpId::slice_backward: {  // (dy) -> dx of attrs.shape
          GPUML_CHECK_SHAPE(normalize_slice(a.shape, a).size == in[0].shape,
                            "slice_backward: dy {} does not match the slice of {}", shape_str(in[0].shape),
                            shape_str(a.shape));
          return {a.shape, in[0].dtype};
        }
        default: break;
      }
      break;
    }
  }
  GPUML_FAIL(ErrorKind::Internal, "no type rule for op {}", op_name(op));
}

}  // namespace

std::vector<TensorType> infer_types(OpId op, std::span<const TensorType> in, const Attrs& a) {
  std::vector<TensorType> out{first_output_type(op, in, a)};
  if (op == OpId::matmul_bgrad) {  // the bias gradient: (m,) for axis 0, (n,) for axis 1
    const TensorType& product = out[0];
    out.push_back({Shape{product.shape[a.axis == 0 ? 0 : 1]}, product.dtype});
  }
  if (op == OpId::cross_entropy) out.push_back(cross_entropy_lse_type(in[0]));  // each row's log-sum-exp
  if (op == OpId::layer_norm) {  // (mean, rstd) of each row
    const TensorType stats = layer_norm_stats_type(in[0], a);
    out.push_back(stats);
    out.push_back(stats);
  }
  if (op == OpId::layer_norm_backward) {  // dweight, dbias: the weight's type
    out.push_back(in[1]);
    out.push_back(in[1]);
  }
  if (op == OpId::attention) out.push_back(attention_lse_type(in[0]));  // the row log-sum-exp
  if (op == OpId::attention_backward) {  // dk, dv: k's and v's types
    out.push_back(in[1]);
    out.push_back(in[2]);
  }
  GPUML_CHECK_KIND(ErrorKind::Internal, static_cast<int>(out.size()) == op_info(op).outputs,
                   "{}: the type rules give {} outputs, the op table says {}", op_name(op), out.size(),
                   op_info(op).outputs);
  return out;
}

TensorType cross_entropy_lse_type(const TensorType& logits) {
  return {Shape{logits.shape.empty() ? 0 : logits.shape[0]}, logits.dtype == DType::f64 ? DType::f64 : DType::f32};
}

TensorType layer_norm_stats_type(const TensorType& x, const Attrs& a) {
  const int first = normalize_axis(a.axis, static_cast<int>(x.shape.size()), "layer_norm");
  return {Shape(x.shape.begin(), x.shape.begin() + first), x.dtype == DType::f64 ? DType::f64 : DType::f32};
}

AttentionDims attention_dims(const Shape& q, const Shape& k, const Attrs& a) {
  GPUML_CHECK_SHAPE(q.size() == 4 && k.size() == 4, "attention: q {} and k {} must be (B, H, T, D)", shape_str(q),
                    shape_str(k));
  const double scale = a.scale != 0.0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(q[3], 1)));
  return {q[0], q[1], q[2], k[2], q[3], scale};
}

TensorType attention_lse_type(const TensorType& q) {
  return {Shape(q.shape.begin(), q.shape.begin() + std::min<size_t>(3, q.shape.size())),
          q.dtype == DType::f64 ? DType::f64 : DType::f32};
}

TensorType infer_type(OpId op, std::span<const TensorType> in, const Attrs& a) {
  GPUML_CHECK_KIND(ErrorKind::Internal, op_info(op).outputs == 1, "{} has {} outputs: ask infer_types for their types",
                   op_name(op), op_info(op).outputs);
  return first_output_type(op, in, a);
}

}  // namespace gpuml
