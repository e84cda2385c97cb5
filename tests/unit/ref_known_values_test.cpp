// The reference backend against values computed by hand: if these hold, ref is a trustworthy
// specification for the op harness, which compares every other backend with it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backend/dispatch.h"
#include "core/philox.h"

namespace gpuml {
namespace {

Backend& ref() { return backend_registry().get("ref"); }

Tensor values(const Shape& shape, const std::vector<double>& v, DType dtype = DType::f32) {
  return Tensor::from_values(shape, v, dtype);
}

Tensor run(OpId op, const std::vector<Tensor>& inputs, const Attrs& attrs = {}) {
  return run_op(ref(), op, inputs, attrs);
}

void expect_values(const Tensor& t, const Shape& shape, const std::vector<double>& expected,
                   double tolerance = 1e-6) {
  ASSERT_EQ(t.shape(), shape);
  std::vector<double> got = t.to_doubles();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
    } else {
      EXPECT_NEAR(got[i], expected[i], tolerance) << "element " << i;
    }
  }
}

Attrs window(int64_t kernel, int64_t stride, int64_t padding) {
  Attrs a;
  a.kernel = {kernel, kernel};
  a.stride = {stride, stride};
  a.padding = {padding, padding};
  return a;
}

TEST(RefKnownValues, Matmul) {
  Tensor a = values({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = values({3, 2}, {7, 8, 9, 10, 11, 12});
  expect_values(run(OpId::matmul, {a, b}), {2, 2}, {58, 64, 139, 154});
  // b^T given as (2, 3); a transposed view as a strided input.
  Attrs tb;
  tb.trans_b = true;
  Tensor bt = values({2, 3}, {7, 9, 11, 8, 10, 12});
  expect_values(run(OpId::matmul, {a, bt}, tb), {2, 2}, {58, 64, 139, 154});
  Attrs ta;
  ta.trans_a = true;
  Tensor at_view = values({2, 3}, {1, 2, 3, 4, 5, 6}).transpose(0, 1);  // (3, 2) view: a^T
  expect_values(run(OpId::matmul, {at_view, b}, ta), {2, 2}, {58, 64, 139, 154});
}

TEST(RefKnownValues, Conv2dOneChannelPaddingStride) {
  Tensor x = values({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Asymmetric weight: a flipped (true convolution) kernel would give {5, 0, 0, 10}.
  Tensor w = values({1, 1, 3, 3}, {1, 0, 0, 0, 0, 0, 0, 0, 2});
  Attrs a;
  a.stride = {2, 2};
  a.padding = {1, 1};
  expect_values(run(OpId::conv2d, {x, w}, a), {1, 1, 2, 2}, {10, 0, 0, 5});
  Tensor ones = values({1, 1, 3, 3}, std::vector<double>(9, 1.0));
  expect_values(run(OpId::conv2d, {x, ones}, a), {1, 1, 2, 2}, {12, 16, 24, 28});
}

TEST(RefKnownValues, MaxAndAvgPool) {
  Tensor x = values({1, 1, 4, 4}, {1, 3, 2, 0, 4, 2, 1, 5, 0, 1, 1, 1, 2, 2, 0, 3});
  expect_values(run(OpId::max_pool2d, {x}, window(2, 2, 0)), {1, 1, 2, 2}, {4, 5, 2, 3});
  expect_values(run(OpId::avg_pool2d, {x}, window(2, 2, 0)), {1, 1, 2, 2}, {2.5, 2, 1.25, 1.25});

  Tensor y = values({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Attrs excl = window(3, 2, 1);
  excl.count_include_pad = false;
  expect_values(run(OpId::avg_pool2d, {y}, excl), {1, 1, 2, 2}, {3, 4, 6, 7});
  Attrs incl = window(3, 2, 1);
  expect_values(run(OpId::avg_pool2d, {y}, incl), {1, 1, 2, 2}, {12. / 9, 16. / 9, 24. / 9, 28. / 9});
  // Padded positions are -inf for max: the corner window sees only 1, 2, 4, 5.
  expect_values(run(OpId::max_pool2d, {y}, window(3, 2, 1)), {1, 1, 2, 2}, {5, 6, 8, 9});
}

TEST(RefKnownValues, MaxPoolBackwardFirstMaxAndOverlap) {
  // Ties: the gradient goes to the first maximum in row-major window order.
  Tensor ties = values({1, 1, 2, 2}, {1, 1, 1, 1});
  expect_values(run(OpId::max_pool2d_backward, {ties, values({1, 1, 1, 1}, {3})}, window(2, 2, 0)),
                {1, 1, 2, 2}, {3, 0, 0, 0});
  // Overlapping windows (stride 1) that share their maximum accumulate into it.
  Attrs a;
  a.kernel = {2, 2};
  Tensor x = values({1, 1, 2, 3}, {1, 5, 2, 0, 1, 3});
  Tensor dy = values({1, 1, 1, 2}, {1, 10});
  expect_values(run(OpId::max_pool2d_backward, {x, dy}, a), {1, 1, 2, 3}, {0, 11, 0, 0, 0, 0});
  // Average backward: each dy spread evenly over its window.
  Attrs avg = window(2, 2, 0);
  avg.shape = {1, 1, 2, 2};
  expect_values(run(OpId::avg_pool2d_backward, {values({1, 1, 1, 1}, {4})}, avg), {1, 1, 2, 2}, {1, 1, 1, 1});
}

TEST(RefKnownValues, SoftmaxAndLogSoftmax) {
  Tensor x = values({2, 2}, {0, std::log(3.0), 1000, 1000});
  expect_values(run(OpId::softmax, {x}), {2, 2}, {0.25, 0.75, 0.5, 0.5});
  expect_values(run(OpId::log_softmax, {x}), {2, 2},
                {std::log(0.25), std::log(0.75), std::log(0.5), std::log(0.5)});
  Attrs axis0;
  axis0.axis = 0;
  Tensor col = values({2, 1}, {0, std::log(3.0)});
  expect_values(run(OpId::softmax, {col}, axis0), {2, 1}, {0.25, 0.75});
}

TEST(RefKnownValues, CrossEntropyWithIgnoredRow) {
  Tensor logits = values({3, 2}, {0, std::log(3.0), 5, 5, 1, 1});
  Tensor labels = values({3}, {1, -100, 0}, DType::i64);
  double expected = (-std::log(0.75) - std::log(0.5)) / 2;
  std::vector<Tensor> forward = run_op_outputs(ref(), OpId::cross_entropy, {logits, labels});
  expect_values(forward[0], {}, {expected});
  // lse: every row's log-sum-exp, the ignored row's too.
  const Tensor lse = forward[1];
  expect_values(lse, {3}, {std::log(4.0), 5 + std::log(2.0), 1 + std::log(2.0)});
  // Backward: (exp(logits - lse) - onehot) * dloss / kept rows; the ignored row gets 0.
  Tensor dloss = values({}, {2});
  expect_values(run(OpId::cross_entropy_backward, {logits, labels, dloss, lse}), {3, 2},
                {0.25, -0.25, 0, 0, -0.5, 0.5});
  // dloss keeps its own dtype: bf16 logits with an f32 dloss (a loss scale) on ref and cpu alike.
  Tensor dloss_f32 = values({}, {1024});
  Tensor logits_bf16 = values({3, 2}, {0, std::log(3.0), 5, 5, 1, 1}, DType::bf16);
  for (const char* name : {"ref", "cpu"}) {
    Tensor g = run_op(backend_registry().get(name), OpId::cross_entropy_backward,
                      {logits_bf16, labels, dloss_f32, lse});  // lse is f32 for bf16 logits too
    EXPECT_EQ(g.dtype(), DType::bf16) << name;
    expect_values(g, {3, 2}, {128, -128, 0, 0, -256, 256}, 1.0);
  }
  // Every row ignored: NaN.
  Tensor all_ignored = values({3}, {-100, -100, -100}, DType::i32);
  expect_values(run_op_outputs(ref(), OpId::cross_entropy, {logits, all_ignored})[0], {},
                {std::numeric_limits<double>::quiet_NaN()});
  // A label outside [0, C) is an error naming the row and the label.
  Tensor bad = values({3}, {1, 2, 0}, DType::i64);
  try {
    run_op_outputs(ref(), OpId::cross_entropy, {logits, bad});
    FAIL() << "expected an error for label 2 of 2 classes";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("row 1"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("label 2"), std::string::npos) << e.message();
  }
}

TEST(RefKnownValues, LayerNorm) {
  Tensor x = values({2, 4}, {1, 2, 3, 4, -2, 0, 2, 4});
  Tensor w = values({4}, {2, 2, 2, 2});
  Tensor b = values({4}, {1, 1, 1, 1});
  Attrs a;
  a.eps = 0;
  double s1 = std::sqrt(1.25), s2 = std::sqrt(5.0);  // biased std of each row
  std::vector<Tensor> out = run_op_outputs(ref(), OpId::layer_norm, {x, w, b}, a);
  ASSERT_EQ(out.size(), 3u);
  expect_values(out[0], {2, 4},
                {1 - 3 / s1, 1 - 1 / s1, 1 + 1 / s1, 1 + 3 / s1, 1 - 6 / s2, 1 - 2 / s2, 1 + 2 / s2,
                 1 + 6 / s2});
  expect_values(out[1], {2}, {2.5, 1.0});          // each row's mean, kept for the backward
  expect_values(out[2], {2}, {1 / s1, 1 / s2});    // and its 1 / std
  // The gradient of sum(y) is 0 for x: a constant shift of y cannot change the normalised x. For
  // w it is the column sums of xhat, for b the number of rows.
  Tensor ones = values({2, 4}, std::vector<double>(8, 1.0));
  std::vector<Tensor> grads = run_op_outputs(ref(), OpId::layer_norm_backward, {x, w, ones, out[1], out[2]}, a);
  ASSERT_EQ(grads.size(), 3u);
  expect_values(grads[0], {2, 4}, std::vector<double>(8, 0.0));
  expect_values(grads[1], {4}, {-1.5 / s1 - 3 / s2, -0.5 / s1 - 1 / s2, 0.5 / s1 + 1 / s2, 1.5 / s1 + 3 / s2});
  expect_values(grads[2], {4}, {2, 2, 2, 2});
}

TEST(RefKnownValues, BatchNormTrainAndEval) {
  Tensor x = values({2, 2}, {1, 10, 3, 30});  // (N, C)
  Tensor w = values({2}, {1, 2}), b = values({2}, {0, 5});
  Tensor running_mean = values({2}, {0, 10}), running_var = values({2}, {4, 100});
  Attrs train;
  train.eps = 0;
  train.training = true;
  // Channel 0: mean 2, var 1; channel 1: mean 20, var 100.
  expect_values(run(OpId::batch_norm, {x, w, b, running_mean, running_var}, train), {2, 2}, {-1, 3, 1, 7});
  Attrs eval = train;
  eval.training = false;
  expect_values(run(OpId::batch_norm, {x, w, b, running_mean, running_var}, eval), {2, 2},
                {0.5, 5, 1.5, 9});
  // The running statistics are inputs only: unchanged.
  expect_values(running_mean, {2}, {0, 10});
}

TEST(RefKnownValues, GeluBothForms) {
  Tensor x = values({3}, {1, -1, 2}, DType::f64);
  expect_values(run(OpId::gelu, {x}), {3}, {0.8413447460685429, -0.15865525393145707, 1.9544997361036416},
                1e-12);
  Attrs tanh_form;
  tanh_form.gelu_tanh = true;
  expect_values(run(OpId::gelu, {x}, tanh_form), {3},
                {0.8411919906082768, -0.15880800939172324, 1.954597694087775}, 1e-12);
  // gelu'(1) = Phi(1) + phi(1); gelu'(0) = 0.5 in both forms.
  Tensor at = values({2}, {1, 0}, DType::f64);
  Tensor dy = values({2}, {2, 3}, DType::f64);
  expect_values(run(OpId::gelu_backward, {at, dy}), {2}, {2 * 1.0833154705876864, 1.5}, 1e-12);
  expect_values(run(OpId::gelu_backward, {values({1}, {0}, DType::f64), values({1}, {1}, DType::f64)},
                    tanh_form),
                {1}, {0.5}, 1e-12);
}

TEST(RefKnownValues, EmbeddingAndBackwardWithRepeatedIndices) {
  Tensor weight = values({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor idx = values({3}, {2, 0, 2}, DType::i64);
  expect_values(run(OpId::embedding, {weight, idx}), {3, 2}, {5, 6, 1, 2, 5, 6});
  Attrs a;
  a.shape = {3, 2};
  Tensor dy = values({3, 2}, {1, 1, 2, 3, 10, 20});
  expect_values(run(OpId::embedding_backward, {idx, dy}, a), {3, 2}, {2, 3, 0, 0, 11, 21});
  Tensor out_of_range = values({2}, {0, 3}, DType::i32);
  EXPECT_THROW(run(OpId::embedding, {weight, out_of_range}), Error);
}

TEST(RefKnownValues, SliceWithStepsAndBackward) {
  std::vector<double> v(15);
  for (int i = 0; i < 15; ++i) v[i] = i;
  Tensor x = values({3, 5}, v);
  Attrs a;
  a.axes = {1};
  a.starts = {-4};
  a.ends = {100};
  a.steps = {2};
  expect_values(run(OpId::slice, {x}, a), {3, 2}, {1, 3, 6, 8, 11, 13});
  Attrs back = a;
  back.shape = {2, 5};
  expect_values(run(OpId::slice_backward, {values({2, 2}, {1, 2, 3, 4})}, back), {2, 5},
                {0, 1, 0, 2, 0, 0, 3, 0, 4, 0});
}

TEST(RefKnownValues, PadAndConcat) {
  Attrs p;
  p.pads = {1, 0, 0, 2};
  p.value = 9;
  expect_values(run(OpId::pad, {values({2, 2}, {1, 2, 3, 4})}, p), {3, 4},
                {9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9});
  Attrs c;
  c.axis = 1;
  expect_values(run(OpId::concat, {values({2, 1}, {1, 2}), values({2, 2}, {3, 4, 5, 6})}, c), {2, 3},
                {1, 3, 4, 2, 5, 6});
}

TEST(RefKnownValues, WhereBroadcasts) {
  Tensor cond = values({2, 1}, {1, 0}, DType::boolean);
  Tensor a = values({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = values({}, {-1});
  expect_values(run(OpId::where, {cond, a, b}), {2, 3}, {1, 2, 3, -1, -1, -1});
}

TEST(RefKnownValues, ArgmaxTiesPickFirst) {
  Tensor x = values({2, 3}, {1, 3, 3, 2, 2, 0});
  Tensor last = run(OpId::argmax, {x});
  EXPECT_EQ(last.dtype(), DType::i64);
  expect_values(last, {2}, {1, 0});
  Attrs a;
  a.axis = 0;
  a.keepdim = true;
  expect_values(run(OpId::argmax, {values({2, 2}, {1, 3, 1, 2})}, a), {1, 2}, {0, 0});
}

TEST(RefKnownValues, ReductionsOfEmptyAndStrided) {
  Attrs axis0;
  axis0.axes = {0};
  Tensor empty = Tensor::empty({0, 3}, DType::f32);
  expect_values(run(OpId::sum, {empty}, axis0), {3}, {0, 0, 0});
  double nan = std::numeric_limits<double>::quiet_NaN();
  expect_values(run(OpId::mean, {empty}, axis0), {3}, {nan, nan, nan});
  // A transposed view: sums of the columns of the original.
  Tensor xt = values({2, 3}, {1, 2, 3, 4, 5, 6}).transpose(0, 1);  // (3, 2)
  Attrs axis1;
  axis1.axes = {1};
  expect_values(run(OpId::sum, {xt}, axis1), {3}, {5, 7, 9});
  expect_values(run(OpId::max, {xt}, axis0), {2}, {3, 6});
}

TEST(RefKnownValues, IntegerArithmeticFollowsC) {
  Tensor a = values({2}, {-7, 7}, DType::i32), b = values({2}, {2, 2}, DType::i32);
  expect_values(run(OpId::div, {a, b}), {2}, {-3, 3});
  Tensor three = values({1}, {3}, DType::u8), five = values({1}, {5}, DType::u8);
  expect_values(run(OpId::sub, {three, five}), {1}, {254});
}

TEST(RefKnownValues, CastRounding) {
  // bf16 keeps 7 mantissa bits: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and rounds to even (1);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6 and rounds to even (1 + 2^-6).
  Attrs to_bf16;
  to_bf16.dtype = DType::bf16;
  Tensor x = values({3}, {1 + 1.0 / 256, 1 + 3.0 / 256, 1 + 1.0 / 256 + 1.0 / (1 << 20)});
  expect_values(run(OpId::cast, {x}, to_bf16), {3}, {1.0, 1 + 1.0 / 64, 1 + 1.0 / 128}, 0.0);
  Attrs to_i32;
  to_i32.dtype = DType::i32;
  expect_values(run(OpId::cast, {values({2}, {-1.7, 2.9})}, to_i32), {2}, {-1, 2}, 0.0);
  Attrs to_bool;
  to_bool.dtype = DType::boolean;
  expect_values(run(OpId::cast, {values({2}, {0, -0.5})}, to_bool), {2}, {0, 1}, 0.0);
}

TEST(RefKnownValues, DropoutKeepsExactlyWherePhiloxUniformAtLeastP) {
  const int64_t n = 100;
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = 1.0 + static_cast<double>(i);
  Attrs a;
  a.p = 0.3;
  a.seed = 42;
  a.offset = 7;
  Tensor y = run(OpId::dropout, {values({4, 25}, v, DType::f64)}, a);
  int kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = philox_uniform(a.seed, a.offset, static_cast<uint64_t>(i)) >= a.p;
    kept += keep;
    EXPECT_DOUBLE_EQ(y.item_as_double(i), keep ? v[i] / 0.7 : 0.0) << "element " << i;
  }
  EXPECT_GT(kept, 50);
  EXPECT_LT(kept, 90);
  // Evaluation mode is an identity copy.
  Attrs eval = a;
  eval.training = false;
  expect_values(run(OpId::dropout, {values({2}, {3, 4})}, eval), {2}, {3, 4}, 0.0);
}

TEST(RefKnownValues, UniformAndArangeAndFill) {
  Attrs u;
  u.shape = {5};
  u.alpha = -2;
  u.beta = 3;
  u.seed = 5;
  Tensor r = run(OpId::uniform, {}, u);
  for (int64_t i = 0; i < 5; ++i)
    EXPECT_FLOAT_EQ(r.item_as_double(i), -2 + 5 * philox_uniform(5, 0, static_cast<uint64_t>(i)));
  Attrs ar;
  ar.shape = {4};
  ar.alpha = -3;
  ar.beta = 2;
  ar.dtype = DType::i64;
  expect_values(run(OpId::arange, {}, ar), {4}, {-3, -1, 1, 3}, 0.0);
  Attrs f;
  f.shape = {2};
  f.value = 2.5;
  expect_values(run(OpId::fill, {}, f), {2}, {2.5, 2.5}, 0.0);
}

}  // namespace
}  // namespace gpuml
