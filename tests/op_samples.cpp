#include "op_samples.h"

#include <fmt/format.h>

#include <cmath>
#include <random>

namespace gpuml::testing {

namespace {

InputSpec real(Shape s) { return {std::move(s)}; }
InputSpec strided(Shape s) { return {std::move(s), Domain::Real, 0, false, true}; }
InputSpec positive(Shape s) { return {std::move(s), Domain::Positive}; }
// layer_norm's kept row statistics: a mean (any real) or an rstd (positive), in their own dtype.
InputSpec row_stat(Shape s, Domain d) { return {std::move(s), d, 0, false, false, true}; }
InputSpec boolean(Shape s) { return {std::move(s), Domain::Bool}; }
InputSpec zero_one(Shape s) { return {std::move(s), Domain::ZeroOne}; }
InputSpec index(Shape s, int64_t bound) { return {std::move(s), Domain::Index, bound}; }
InputSpec label(Shape s, int64_t classes, bool ignored = false) {
  return {std::move(s), Domain::Label, classes, ignored};
}

Attrs with_axes(std::vector<int64_t> axes, bool keepdim = false) {
  Attrs a;
  a.axes = std::move(axes);
  a.keepdim = keepdim;
  return a;
}
Attrs with_axis(int64_t axis) {
  Attrs a;
  a.axis = axis;
  return a;
}
Attrs conv(int64_t stride, int64_t padding, int64_t dilation = 1, int64_t groups = 1) {
  Attrs a;
  a.stride = {stride, stride};
  a.padding = {padding, padding};
  a.dilation = {dilation, dilation};
  a.groups = groups;
  return a;
}
Attrs pool(int64_t kernel, int64_t stride, int64_t padding, bool count_include_pad = true) {
  Attrs a;
  a.kernel = {kernel, kernel};
  a.stride = {stride, stride};
  a.padding = {padding, padding};
  a.count_include_pad = count_include_pad;
  return a;
}
// The planner's fused matmul ops: the activation, a transposed weight, gelu's form.
Attrs fused(Activation act, bool trans_b, bool gelu_tanh) {
  Attrs a;
  a.activation = act;
  a.trans_b = trans_b;
  a.gelu_tanh = gelu_tanh;
  return a;
}
Attrs with_shape(Attrs a, Shape s) {
  a.shape = std::move(s);
  return a;
}

std::vector<OpSample> build_samples() {
  std::vector<OpSample> s;
  auto add = [&](OpId op, std::string label, std::vector<InputSpec> in, Attrs a = {}) {
    s.push_back({op, std::move(label), std::move(in), std::move(a)});
  };
  // Unary: odd sizes, a strided view, an empty tensor.
  for (OpId op : {OpId::neg, OpId::abs, OpId::sign, OpId::exp, OpId::tanh, OpId::sigmoid, OpId::relu,
                  OpId::copy}) {
    add(op, "odd", {real({3, 37})});
    add(op, "strided", {strided({5, 7})});
    add(op, "empty", {real({0, 4})});
  }
  for (OpId op : {OpId::log, OpId::sqrt, OpId::rsqrt}) {
    add(op, "odd", {positive({3, 37})});
    add(op, "strided", {{{6, 5}, Domain::Positive, 0, false, true}});
  }
  Attrs gelu_tanh;
  gelu_tanh.gelu_tanh = true;
  add(OpId::gelu, "erf", {real({4, 33})});
  add(OpId::gelu, "tanh", {strided({4, 9})}, gelu_tanh);
  // Contiguous f32 and bf16 take the AVX2 loops where the CPU has them; past the parallel grain, split in chunks.
  add(OpId::gelu, "tanh_contiguous", {real({3, 67})}, gelu_tanh);
  add(OpId::gelu, "tanh_parallel", {real({3, 6001})}, gelu_tanh);
  for (DType target : {DType::f32, DType::f64, DType::i32, DType::bf16}) {
    Attrs a;
    a.dtype = target;
    add(OpId::cast, std::string("to_") + std::string(dtype_name(target)), {real({2, 17})}, a);
    // f32 <-> bf16 take the AVX2 loops when contiguous; past the parallel grain, in chunks.
    add(OpId::cast, std::string("to_") + std::string(dtype_name(target)) + "_parallel", {real({3, 6001})}, a);
    add(OpId::cast, std::string("to_") + std::string(dtype_name(target)) + "_strided", {strided({5, 7})}, a);
  }
  // Binary with broadcasting and strided operands.
  for (OpId op : {OpId::add, OpId::sub, OpId::mul, OpId::maximum, OpId::minimum, OpId::eq, OpId::ne,
                  OpId::lt, OpId::le, OpId::gt, OpId::ge}) {
    add(op, "same", {real({3, 35}), real({3, 35})});
    add(op, "broadcast", {real({4, 1, 5}), real({3, 1})});
    add(op, "strided", {strided({5, 6}), real({6})});
    add(op, "empty", {real({0, 3}), real({1, 3})});
  }
  // add, sub and mul of contiguous bf16 of one shape take an AVX2 loop; past the parallel grain, in chunks.
  for (OpId op : {OpId::add, OpId::sub, OpId::mul}) add(op, "same_parallel", {real({3, 6001}), real({3, 6001})});
  add(OpId::div, "same", {real({3, 35}), positive({3, 35})});
  add(OpId::div, "broadcast", {real({4, 1, 5}), positive({3, 1})});
  add(OpId::div, "strided", {strided({5, 6}), positive({6})});
  add(OpId::pow, "same", {positive({3, 21}), real({3, 21})});
  add(OpId::pow, "broadcast", {positive({2, 1, 5}), real({3, 1})});
  add(OpId::where, "broadcast", {boolean({3, 1}), real({3, 4}), real({4})});
  add(OpId::where, "strided", {boolean({5, 6}), strided({5, 6}), real({5, 6})});
  // Reductions over various axes.
  for (OpId op : {OpId::sum, OpId::mean, OpId::max}) {
    add(op, "all", {real({3, 5, 7})});
    add(op, "axis1", {real({3, 5, 7})}, with_axes({1}));
    add(op, "axes02_keep", {real({3, 5, 7})}, with_axes({0, -1}, true));
    add(op, "strided", {strided({6, 9})}, with_axes({0}));
    add(op, "long_row", {real({2, 1037})}, with_axes({1}));
    add(op, "aligned_rows", {real({4, 76})}, with_axes({1}));  // 16-byte packs (and a bf16 tail) on CUDA
    add(op, "conv_bias", {real({4, 6, 5, 7})}, with_axes({0, 2, 3}));  // a conv bias gradient
    add(op, "columns", {real({9, 13})}, with_axes({0}));                 // a linear bias gradient
    add(op, "wide_columns", {real({9, 70})}, with_axes({0}));            // one thread per column on CUDA
    add(op, "tall_columns", {real({150, 7})}, with_axes({0}));  // the cpu kernel's 64-row float runs in bf16
  }
  add(OpId::sum, "empty", {real({0, 3})}, with_axes({0}));
  add(OpId::sum, "empty_wide", {real({0, 40})}, with_axes({0}));
  add(OpId::argmax, "last", {real({4, 9})});
  add(OpId::argmax, "aligned_rows", {real({3, 136})});
  add(OpId::argmax, "wide_axis0", {real({5, 40})}, with_axis(0));
  add(OpId::argmax, "axis0_keep", {real({5, 3})}, [] { Attrs a = with_axis(0); a.keepdim = true; return a; }());
  for (OpId op : {OpId::softmax, OpId::log_softmax}) {
    add(op, "last", {real({3, 11})});
    add(op, "aligned_rows", {real({4, 76})});
    add(op, "axis0", {real({5, 4})}, with_axis(0));
    add(op, "strided", {strided({4, 7})});
  }
  // Matmul: plain, transposed, batched with broadcast, odd sizes.
  add(OpId::matmul, "plain", {real({7, 5}), real({5, 3})});
  {
    Attrs t;
    t.trans_a = true;
    t.trans_b = true;
    add(OpId::matmul, "trans_ab", {real({5, 7}), real({3, 5})}, t);
    Attrs tb;
    tb.trans_b = true;
    add(OpId::matmul, "trans_b_batched", {real({2, 4, 6}), real({3, 6})}, tb);
  }
  add(OpId::matmul, "batch_broadcast", {real({2, 1, 3, 4}), real({3, 4, 5})});
  add(OpId::matmul, "strided", {strided({6, 4}), real({4, 5})});
  // matmul_bias_act, the planner's fused linear layer: every activation, a transposed weight as
  // nn::Linear has it, a strided input.
  {
    add(OpId::matmul_bias_act, "bias", {real({7, 5}), real({5, 3}), real({3})}, fused(Activation::none, false, false));
    add(OpId::matmul_bias_act, "relu_linear", {real({9, 6}), real({4, 6}), real({4})},
        fused(Activation::relu, true, false));
    add(OpId::matmul_bias_act, "gelu", {real({5, 8}), real({8, 6}), real({6})}, fused(Activation::gelu, false, false));
    add(OpId::matmul_bias_act, "gelu_tanh", {real({5, 8}), real({6, 8}), real({6})},
        fused(Activation::gelu, true, true));
    add(OpId::matmul_bias_act, "strided", {strided({6, 4}), real({4, 5}), real({5})},
        fused(Activation::relu, false, false));
  }
  // matmul_bgrad, the planner's weight + bias gradient: g as a (nn::Linear, g^T x) or as b (x^T g).
  {
    auto bgrad = [](int64_t axis) {
      Attrs a;
      a.trans_a = true;
      a.axis = axis;
      return a;
    };
    add(OpId::matmul_bgrad, "g_first", {real({9, 4}), real({9, 6})}, bgrad(0));
    add(OpId::matmul_bgrad, "g_second", {real({7, 5}), real({7, 3})}, bgrad(1));
    add(OpId::matmul_bgrad, "strided", {strided({6, 4}), real({6, 5})}, bgrad(0));
    add(OpId::matmul_bgrad, "one_row", {real({1, 3}), real({1, 2})}, bgrad(1));
  }
  // matmul_dact, the planner's product meeting an activation's backward: relu (aux: relu's
  // output; negatives stand for its zeros) and both gelu forms (aux: gelu's input). 16 columns
  // let cuBLASLt's DGELU take the aux (its leading dim must divide by 8); 150 columns make the
  // DRELU mask's rows padded to 256 bits.
  {
    add(OpId::matmul_dact, "relu", {real({9, 6}), real({16, 6}), real({9, 16})}, fused(Activation::relu, true, false));
    add(OpId::matmul_dact, "relu_wide", {real({5, 7}), real({7, 150}), real({5, 150})},
        fused(Activation::relu, false, false));
    add(OpId::matmul_dact, "gelu_tanh", {real({12, 8}), real({16, 8}), real({12, 16})}, fused(Activation::gelu, true, true));
    add(OpId::matmul_dact, "gelu", {real({5, 8}), real({8, 6}), real({5, 6})}, fused(Activation::gelu, false, false));
    add(OpId::matmul_dact, "strided", {strided({6, 4}), real({4, 5}), real({6, 5})},
        fused(Activation::relu, false, false));
  }
  // Convolution: padding, stride, dilation, groups.
  add(OpId::conv2d, "pad1", {real({2, 3, 7, 6}), real({4, 3, 3, 3})}, conv(1, 1));
  add(OpId::conv2d, "stride2", {real({1, 2, 9, 8}), real({3, 2, 3, 2})}, conv(2, 0));
  add(OpId::conv2d, "dilated_groups", {real({2, 4, 8, 8}), real({6, 2, 3, 3})}, conv(1, 2, 2, 2));
  // conv2d_bias_act, the planner's fused conv layer: with and without an activation, groups.
  {
    auto with_act = [](Attrs a, Activation act, bool gelu_tanh = false) {
      a.activation = act;
      a.gelu_tanh = gelu_tanh;
      return a;
    };
    add(OpId::conv2d_bias_act, "relu_pad1", {real({2, 3, 7, 6}), real({4, 3, 3, 3}), real({4})},
        with_act(conv(1, 1), Activation::relu));
    add(OpId::conv2d_bias_act, "bias_stride2", {real({1, 2, 9, 8}), real({3, 2, 3, 2}), real({3})},
        with_act(conv(2, 0), Activation::none));
    add(OpId::conv2d_bias_act, "gelu_groups", {real({2, 4, 8, 8}), real({6, 2, 3, 3}), real({6})},
        with_act(conv(1, 2, 2, 2), Activation::gelu, true));
  }
  add(OpId::conv2d_backward_data, "pad1", {real({2, 4, 7, 6}), real({4, 3, 3, 3})},
      with_shape(conv(1, 1), {2, 3, 7, 6}));
  add(OpId::conv2d_backward_data, "stride2_groups", {real({1, 4, 4, 4}), real({4, 1, 3, 3})},
      with_shape(conv(2, 1, 1, 2), {1, 2, 8, 7}));
  add(OpId::conv2d_backward_filter, "pad1", {real({2, 3, 7, 6}), real({2, 4, 7, 6})},
      with_shape(conv(1, 1), {4, 3, 3, 3}));
  add(OpId::conv2d_backward_filter, "stride2_groups", {real({1, 2, 8, 7}), real({1, 4, 4, 4})},
      with_shape(conv(2, 1, 1, 2), {4, 1, 3, 3}));
  // Pooling.
  add(OpId::max_pool2d, "k2", {real({2, 3, 8, 7})}, pool(2, 2, 0));
  add(OpId::max_pool2d, "k3s2p1", {real({1, 2, 9, 9})}, pool(3, 2, 1));
  add(OpId::max_pool2d_backward, "k2", {real({2, 3, 8, 7}), real({2, 3, 4, 3})}, pool(2, 2, 0));
  add(OpId::max_pool2d_backward, "k2_odd_h", {real({2, 3, 9, 8}), real({2, 3, 4, 4})}, pool(2, 2, 0));
  add(OpId::max_pool2d_backward, "k3s2p1", {real({1, 2, 9, 9}), real({1, 2, 5, 5})}, pool(3, 2, 1));
  add(OpId::avg_pool2d, "k2", {real({2, 3, 8, 7})}, pool(2, 2, 0));
  add(OpId::avg_pool2d, "k3s2p1_excl", {real({1, 2, 9, 9})}, pool(3, 2, 1, false));
  add(OpId::avg_pool2d, "k3s2p1_incl", {real({1, 2, 9, 9})}, pool(3, 2, 1, true));
  add(OpId::avg_pool2d_backward, "k2", {real({2, 3, 4, 3})}, with_shape(pool(2, 2, 0), {2, 3, 8, 7}));
  add(OpId::avg_pool2d_backward, "k3s2p1_excl", {real({1, 2, 5, 5})},
      with_shape(pool(3, 2, 1, false), {1, 2, 9, 9}));
  // Losses and norms.
  add(OpId::cross_entropy, "plain", {real({7, 5}), label({7}, 5)});
  // A vocabulary-wide row, longer than any vector width; the backward's lse in its own dtype.
  add(OpId::cross_entropy, "wide", {real({3, 1031}), label({3}, 1031)});
  add(OpId::cross_entropy_backward, "wide",
      {real({3, 1031}), label({3}, 1031), real({}), row_stat({3}, Domain::Positive)});
  {
    Attrs ig;
    ig.ignore_index = -100;
    add(OpId::cross_entropy, "ignore", {real({9, 4}), label({9}, 4, true)}, ig);
    add(OpId::cross_entropy_backward, "ignore",
        {real({9, 4}), label({9}, 4, true), real({}), row_stat({9}, Domain::Positive)}, ig);
  }
  add(OpId::layer_norm, "last", {real({3, 5, 16}), real({16}), real({16})});
  add(OpId::layer_norm, "wide", {real({4, 72}), real({72}), real({72})});
  add(OpId::layer_norm, "last2", {real({4, 3, 5}), real({3, 5}), real({3, 5})}, with_axis(1));
  // Parameters in f32 beside a bf16/f16 x (mixed precision); for f32 and f64 the same as "last".
  add(OpId::layer_norm, "f32_params", {real({3, 5, 16}), row_stat({16}, Domain::Real), row_stat({16}, Domain::Real)});
  // (x, w, dy, mean, rstd): the kernels read the statistics as given, whatever x's own are.
  add(OpId::layer_norm_backward, "last",
      {real({3, 5, 16}), real({16}), real({3, 5, 16}), row_stat({3, 5}, Domain::Real), row_stat({3, 5}, Domain::Positive)});
  add(OpId::layer_norm_backward, "wide",
      {real({4, 72}), real({72}), real({4, 72}), row_stat({4}, Domain::Real), row_stat({4}, Domain::Positive)});
  add(OpId::layer_norm_backward, "f32_params",
      {real({40, 16}), row_stat({16}, Domain::Real), real({40, 16}), row_stat({40}, Domain::Real),
       row_stat({40}, Domain::Positive)});
  // 100 rows: several of the cpu kernel's 32-row blocks, in parallel, a partial last one.
  add(OpId::layer_norm_backward, "blocks",
      {real({100, 24}), real({24}), real({100, 24}), row_stat({100}, Domain::Real), row_stat({100}, Domain::Positive)});
  add(OpId::layer_norm_backward, "last2",
      {real({4, 3, 5}), real({3, 5}), real({4, 3, 5}), row_stat({4}, Domain::Real), row_stat({4}, Domain::Positive)},
      with_axis(1));
  // attention (q, k, v): odd sizes, Tq != Tk, causal (bottom-right: a decode step sees every key),
  // strided views, dropout, an explicit scale; no tile size of any backend divides these T.
  {
    Attrs plain;
    Attrs causal;
    causal.causal = true;
    Attrs dropout = causal;
    dropout.p = 0.3;
    dropout.seed = 77;
    dropout.offset = 3;
    Attrs scaled;
    scaled.scale = 0.5;
    Attrs eval_dropout = dropout;
    eval_dropout.training = false;
    struct Case {
      const char* label;
      int64_t b, h, tq, tk, d;
      Attrs attrs;
      bool strided;
    };
    const Case cases[] = {
        {"plain", 2, 3, 5, 7, 8, plain, false},        {"causal", 2, 2, 7, 7, 16, causal, false},
        {"causal_tq_lt_tk", 1, 2, 3, 8, 5, causal, false}, {"decode", 2, 2, 1, 9, 8, causal, false},
        {"strided", 2, 2, 5, 6, 4, causal, true},      {"dropout", 2, 2, 6, 6, 4, dropout, false},
        {"dropout_eval", 1, 2, 4, 5, 4, eval_dropout, false}, {"scale", 1, 3, 4, 6, 8, scaled, false},
    };
    for (const Case& k : cases) {
      auto make = [&](int64_t t) { return k.strided ? strided({k.b, k.h, t, k.d}) : real({k.b, k.h, t, k.d}); };
      add(OpId::attention, k.label, {make(k.tq), make(k.tk), make(k.tk)}, k.attrs);
      // (q, k, v, o, do, lse): the kernels read o and lse as given (the backward's D_i and P).
      add(OpId::attention_backward, k.label,
          {make(k.tq), make(k.tk), make(k.tk), make(k.tq), make(k.tq), row_stat({k.b, k.h, k.tq}, Domain::Real)},
          k.attrs);
    }
  }
  {
    Attrs train;
    train.training = true;
    Attrs eval;
    eval.training = false;
    add(OpId::batch_norm, "train_2d", {real({4, 3, 5, 5}), real({3}), real({3}), real({3}), positive({3})}, train);
    add(OpId::batch_norm, "train_1d", {real({6, 5}), real({5}), real({5}), real({5}), positive({5})}, train);
    add(OpId::batch_norm, "eval_2d", {real({2, 3, 4, 4}), real({3}), real({3}), real({3}), positive({3})}, eval);
    add(OpId::batch_norm_backward, "2d", {real({4, 3, 5, 5}), real({3}), real({4, 3, 5, 5})});
    add(OpId::batch_norm_backward, "1d", {real({6, 5}), real({5}), real({6, 5})});
  }
  add(OpId::gelu_backward, "erf", {real({3, 19}), real({3, 19})});
  add(OpId::gelu_backward, "tanh", {real({3, 19}), real({3, 19})}, gelu_tanh);
  add(OpId::gelu_backward, "tanh_strided", {strided({5, 7}), real({5, 7})}, gelu_tanh);
  add(OpId::gelu_backward, "tanh_parallel", {real({3, 6001}), real({3, 6001})}, gelu_tanh);
  add(OpId::relu_backward, "odd", {real({3, 37}), real({3, 37})});
  add(OpId::relu_backward, "strided", {strided({5, 7}), strided({5, 7})});
  add(OpId::relu_backward, "empty", {real({0, 4}), real({0, 4})});
  // Random ops: the harness compares them exactly (same Philox numbers on every backend).
  {
    Attrs d;
    d.p = 0.3;
    d.seed = 1234;
    d.offset = 5;
    add(OpId::dropout, "p0.3", {real({5, 23})}, d);
    Attrs off = d;
    off.training = false;
    add(OpId::dropout, "eval", {real({5, 7})}, off);
    Attrs u;
    u.shape = {3, 41};
    u.alpha = -2;
    u.beta = 3;
    u.seed = 99;
    u.offset = 17;
    add(OpId::uniform, "range", {}, u);
    Attrs n = u;
    n.alpha = 1;
    n.beta = 2;
    add(OpId::normal, "mean1_std2", {}, n);
  }
  add(OpId::embedding, "2d_idx", {real({10, 6}), index({3, 4}, 10)});
  add(OpId::embedding_backward, "repeat", {index({3, 5}, 4), real({3, 5, 6})}, with_shape({}, {4, 6}));
  // Movement.
  add(OpId::reshape, "merge", {real({3, 4, 5})}, with_shape({}, {12, -1}));
  add(OpId::reshape, "strided", {strided({4, 6})}, with_shape({}, {24}));
  add(OpId::permute, "3d", {real({2, 3, 5})}, with_axes({2, 0, 1}));
  {
    Attrs sl;
    sl.axes = {0, 1};
    sl.starts = {1, -5};
    sl.ends = {4, 100};
    sl.steps = {2, 1};
    add(OpId::slice, "steps", {real({5, 7})}, sl);
    add(OpId::slice_backward, "steps", {real({2, 5})}, with_shape(sl, {5, 7}));
  }
  add(OpId::broadcast_to, "expand", {real({3, 1})}, with_shape({}, {2, 3, 4}));
  add(OpId::concat, "axis1", {real({2, 3}), real({2, 5}), strided({2, 1})}, with_axis(1));
  add(OpId::concat, "axis0", {real({1, 4}), real({3, 4})}, with_axis(0));
  {
    Attrs p;
    p.pads = {1, 0, 2, 3};
    p.value = 0.5;
    add(OpId::pad, "2d", {real({3, 4})}, p);
  }
  // Creation.
  {
    Attrs f;
    f.shape = {3, 5};
    f.value = 2.5;
    add(OpId::fill, "2.5", {}, f);
    Attrs r;
    r.shape = {11};
    r.alpha = -3;
    r.beta = 2;
    add(OpId::arange, "step2", {}, r);
  }
  // Collectives: run without a communicator here (one process: the identity); across ranks in
  // tests/unit/sync_batch_norm_test.cpp and tests/dist.
  add(OpId::all_reduce_sum, "odd", {real({3, 37})});
  add(OpId::all_reduce_sum, "strided", {strided({5, 7})});
  // Optimizer updates: state (rows, P), grad (P,), hyper (3,) = [lr, 1-beta1^t, 1-beta2^t], decay
  // (P,) 0 or 1 per column. The Adam state is Positive so that its v row (a running mean of g^2)
  // is >= 0, as it always is.
  {
    Attrs plain;
    plain.weight_decay = 0.01;
    add(OpId::sgd_update, "plain_wd", {real({1, 37}), real({37}), positive({3}), zero_one({37})}, plain);
    add(OpId::sgd_update, "empty", {real({1, 0}), real({0}), positive({3}), zero_one({0})});
    Attrs momentum;
    momentum.momentum = 0.9;
    add(OpId::sgd_update, "momentum", {real({2, 41}), strided({41}), positive({3}), zero_one({41})}, momentum);
    Attrs nesterov = momentum;
    nesterov.nesterov = true;
    nesterov.weight_decay = 0.05;
    add(OpId::sgd_update, "nesterov_wd", {real({2, 1029}), real({1029}), positive({3}), zero_one({1029})}, nesterov);
    Attrs adam;
    adam.eps = 1e-8;
    adam.weight_decay = 0.02;
    add(OpId::adam_update, "l2", {positive({3, 37}), real({37}), positive({3}), zero_one({37})}, adam);
    add(OpId::adam_update, "strided_grad", {positive({3, 19}), strided({19}), positive({3}), zero_one({19})}, adam);
    Attrs adamw = adam;
    adamw.decoupled_weight_decay = true;
    adamw.beta1 = 0.8;
    adamw.beta2 = 0.95;
    add(OpId::adam_update, "adamw", {positive({3, 1031}), real({1031}), positive({3}), zero_one({1031})}, adamw);
    // hyper (4,): the fourth element scales the gradient (global-norm clipping's factor).
    add(OpId::adam_update, "adamw_scaled", {positive({3, 1031}), real({1031}), positive({4}), zero_one({1031})}, adamw);
    add(OpId::sgd_update, "nesterov_scaled", {real({2, 53}), real({53}), positive({4}), zero_one({53})}, nesterov);
    adamw.weight_decay = 0.3;
    add(OpId::adam_update, "adamw_strided_decay",
        {positive({3, 67}), real({67}), positive({3}), {{67}, Domain::ZeroOne, 0, false, true}}, adamw);
  }
  return s;
}

}  // namespace

const std::vector<OpSample>& op_samples() {
  static const std::vector<OpSample> samples = build_samples();
  return samples;
}

double tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::f64: return 1e-9;
    case DType::f32: return 1e-4;
    case DType::bf16: return 3e-2;
    case DType::f16: return 5e-3;
    default: return 0.0;
  }
}

std::vector<Tensor> make_sample_inputs(const OpSample& sample, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed * 7919 + static_cast<uint64_t>(sample.op));
  std::vector<Tensor> out;
  for (const InputSpec& in : sample.inputs) {
    // A strided input is every other column of a buffer twice as wide.
    Shape alloc = in.shape;
    if (in.strided && !alloc.empty()) alloc.back() *= 2;
    int64_t n = numel(alloc);
    std::vector<double> values(static_cast<size_t>(n));
    DType dt = dtype;
    for (double& v : values) {
      switch (in.domain) {
        case Domain::Real:
          if (is_floating(dtype)) v = std::normal_distribution<double>(0.0, 1.0)(rng);
          else if (dtype == DType::boolean) v = static_cast<double>(rng() % 2);
          else if (dtype == DType::u8) v = static_cast<double>(rng() % 11);
          else v = static_cast<double>(static_cast<int64_t>(rng() % 11) - 5);
          break;
        case Domain::Positive:
          if (is_floating(dtype)) v = std::uniform_real_distribution<double>(0.5, 2.0)(rng);
          else v = static_cast<double>(1 + rng() % 5);
          break;
        case Domain::Bool:
          dt = DType::boolean;
          v = static_cast<double>(rng() % 2);
          break;
        case Domain::ZeroOne:
          v = static_cast<double>(rng() % 2);
          break;
        case Domain::Index:
        case Domain::Label:
          dt = DType::i64;
          v = static_cast<double>(rng() % static_cast<uint64_t>(in.bound));
          if (in.with_ignored && rng() % 3 == 0) v = static_cast<double>(sample.attrs.ignore_index);
          break;
      }
    }
    if (in.domain == Domain::ZeroOne && n >= 2) {  // both values, where a strided view sees them too
      values[1] = 0.0;
      values[static_cast<size_t>(n) - 1] = 1.0;
    }
    if (in.stats) dt = dtype == DType::f64 ? DType::f64 : DType::f32;
    Tensor t = Tensor::from_values(alloc, values, dt);
    if (in.strided && !alloc.empty()) t = t.slice(-1, 1, alloc.back(), 2);
    out.push_back(t);
  }
  return out;
}

::testing::AssertionResult all_close(const Tensor& got, const Tensor& want, double tol) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "got " << shape_str(got.shape()) << " " << dtype_name(got.dtype())
                                         << ", ref gives " << shape_str(want.shape()) << " "
                                         << dtype_name(want.dtype());
  std::vector<double> g = got.to_doubles(), w = want.to_doubles();
  int64_t bad = 0;
  std::string first;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok;
    if (std::isnan(w[i]) || std::isnan(g[i])) ok = std::isnan(w[i]) && std::isnan(g[i]);
    else if (std::isinf(w[i]) || std::isinf(g[i])) ok = g[i] == w[i];
    else ok = std::fabs(g[i] - w[i]) <= tol * (1.0 + std::fabs(w[i]));
    if (!ok && bad++ < 5) first += fmt::format("\n  [{}] got {} ref {}", i, g[i], w[i]);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << g.size() << " elements differ (tolerance " << tol
                                       << "):" << first;
}

}  // namespace gpuml::testing
