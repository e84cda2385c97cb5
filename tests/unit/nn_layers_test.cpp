// Each layer's forward pass, run through the planner and executor, against a hand computation in
// double on fresh random inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "core/philox.h"
#include "nn/activations.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/flatten.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/sequential.h"
#include "nn_test_util.h"

namespace gpuml::nn {
namespace {

using testing::expect_close;
using testing::random_tensor;
using testing::run_forward;

// Element (i0, i1, ...) of a contiguous row-major vector.
struct Nd {
  const std::vector<double>& v;
  Shape shape;
  double at(std::initializer_list<int64_t> idx) const {
    int64_t flat = 0, d = 0;
    for (int64_t i : idx) flat = flat * shape[static_cast<size_t>(d++)] + i;
    return v[static_cast<size_t>(flat)];
  }
};

TEST(NnLayers, LinearIsXWTransposePlusBias) {
  std::mt19937_64 rng(11);
  Linear fc(7, 3);
  Tensor x = random_tensor({5, 7}, rng), w = random_tensor({3, 7}, rng),
         b = random_tensor({3}, rng);
  auto r = run_forward(fc, x, {{"layer.weight", w}, {"layer.bias", b}}, true);
  std::vector<double> xv = x.to_doubles(), wv = w.to_doubles(), bv = b.to_doubles(), expected;
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 3; ++o) {
      double s = bv[o];
      for (int i = 0; i < 7; ++i) s += xv[n * 7 + i] * wv[o * 7 + i];
      expected.push_back(s);
    }
  expect_close(r.y, {5, 3}, expected);

  Linear no_bias(7, 3, false);
  auto r2 = run_forward(no_bias, x, {{"layer.weight", w}}, true);
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 3; ++o) expected[n * 3 + o] -= bv[o];
  expect_close(r2.y, {5, 3}, expected);
}

TEST(NnLayers, Conv2dWithBiasStridePaddingGroups) {
  std::mt19937_64 rng(12);
  const int64_t N = 2, C = 4, H = 7, W = 6, O = 6, G = 2, K = 3, S = 2, P = 1;
  Conv2d conv(C, O, K, S, P, 1, G);
  Tensor x = random_tensor({N, C, H, W}, rng), w = random_tensor({O, C / G, K, K}, rng),
         b = random_tensor({O}, rng);
  auto r = run_forward(conv, x, {{"layer.weight", w}, {"layer.bias", b}}, false);
  const int64_t Ho = (H + 2 * P - K) / S + 1, Wo = (W + 2 * P - K) / S + 1;
  std::vector<double> xv = x.to_doubles(), wv = w.to_doubles(), bv = b.to_doubles(), expected;
  Nd xn{xv, {N, C, H, W}}, wn{wv, {O, C / G, K, K}};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double s = bv[static_cast<size_t>(o)];
          int64_t g = o / (O / G);
          for (int64_t c = 0; c < C / G; ++c)
            for (int64_t ki = 0; ki < K; ++ki)
              for (int64_t kj = 0; kj < K; ++kj) {
                int64_t hi = i * S - P + ki, wj = j * S - P + kj;
                if (hi < 0 || hi >= H || wj < 0 || wj >= W) continue;
                s += xn.at({n, g * (C / G) + c, hi, wj}) * wn.at({o, c, ki, kj});
              }
          expected.push_back(s);
        }
  expect_close(r.y, {N, O, Ho, Wo}, expected);
  EXPECT_EQ(conv.output_shape({C, H, W}), (Shape{O, Ho, Wo}));
}

TEST(NnLayers, MaxPoolAndAvgPool) {
  std::mt19937_64 rng(13);
  Tensor x = random_tensor({2, 3, 6, 5}, rng);
  std::vector<double> xv = x.to_doubles();
  Nd xn{xv, {2, 3, 6, 5}};
  auto r = run_forward(MaxPool2d(2), x, {}, true);
  std::vector<double> expected;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          double m = -INFINITY;
          for (int64_t a = 0; a < 2; ++a)
            for (int64_t b = 0; b < 2; ++b) m = std::max(m, xn.at({n, c, 2 * i + a, 2 * j + b}));
          expected.push_back(m);
        }
  expect_close(r.y, {2, 3, 3, 2}, expected);

  // 3x3 windows, stride 2, padding 1, padded positions not counted.
  auto ra = run_forward(AvgPool2d(3, 2, 1, false), x, {}, true);
  expected.clear();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          double s = 0;
          int count = 0;
          for (int64_t a = 0; a < 3; ++a)
            for (int64_t b = 0; b < 3; ++b) {
              int64_t h = 2 * i - 1 + a, w = 2 * j - 1 + b;
              if (h < 0 || h >= 6 || w < 0 || w >= 5) continue;
              s += xn.at({n, c, h, w});
              ++count;
            }
          expected.push_back(s / count);
        }
  expect_close(ra.y, {2, 3, 3, 3}, expected);
}

struct BnCase {
  Tensor x, w, b, rm, rv;
  std::map<std::string, Tensor> values() const {
    return {{"layer.weight", w},
            {"layer.bias", b},
            {"layer.running_mean", rm},
            {"layer.running_var", rv},
            {"layer.num_batches_tracked", Tensor::from_values({}, {3}, DType::i64)}};
  }
};

TEST(NnLayers, BatchNorm2dTrainingUsesBatchStatsAndUpdatesRunningStats) {
  std::mt19937_64 rng(14);
  const int64_t N = 4, C = 3, H = 5, W = 2, M = H * W;
  BnCase c{random_tensor({N, C, H, W}, rng, -2, 3), random_tensor({C}, rng),
           random_tensor({C}, rng), random_tensor({C}, rng), random_tensor({C}, rng, 0.5, 2.0)};
  const double momentum = 0.3, eps = 1e-3;
  BatchNorm2d bn(C, eps, momentum);
  auto r = run_forward(bn, c.x, c.values(), true);

  std::vector<double> xv = c.x.to_doubles(), wv = c.w.to_doubles(), bv = c.b.to_doubles(),
                      rm = c.rm.to_doubles(), rv = c.rv.to_doubles();
  std::vector<double> mean(C, 0), var(C, 0), expected(xv.size());
  const double n = static_cast<double>(N * M);
  for (int64_t i = 0; i < N * C * M; ++i) mean[(i / M) % C] += xv[i] / n;
  for (int64_t i = 0; i < N * C * M; ++i)
    var[(i / M) % C] += std::pow(xv[i] - mean[(i / M) % C], 2) / n;
  for (int64_t i = 0; i < N * C * M; ++i) {
    int64_t ch = (i / M) % C;
    expected[i] = (xv[i] - mean[ch]) / std::sqrt(var[ch] + eps) * wv[ch] + bv[ch];
  }
  expect_close(r.y, {N, C, H, W}, expected);

  std::vector<double> new_rm(C), new_rv(C);
  for (int64_t ch = 0; ch < C; ++ch) {
    new_rm[ch] = (1 - momentum) * rm[ch] + momentum * mean[ch];
    new_rv[ch] = (1 - momentum) * rv[ch] + momentum * var[ch] * n / (n - 1);  // unbiased
  }
  ASSERT_EQ(r.buffer_updates.size(), 3u);
  expect_close(r.buffer_updates.at("layer.running_mean"), {C}, new_rm);
  expect_close(r.buffer_updates.at("layer.running_var"), {C}, new_rv);
  const Tensor& tracked = r.buffer_updates.at("layer.num_batches_tracked");
  EXPECT_EQ(tracked.dtype(), DType::i64);
  EXPECT_EQ(tracked.item_as_double(0), 4.0);
}

TEST(NnLayers, BatchNormEvalUsesRunningStatsAndUpdatesNothing) {
  std::mt19937_64 rng(15);
  const int64_t N = 6, C = 4;
  BnCase c{random_tensor({N, C}, rng, -2, 3), random_tensor({C}, rng), random_tensor({C}, rng),
           random_tensor({C}, rng), random_tensor({C}, rng, 0.5, 2.0)};
  BatchNorm1d bn(C);
  auto r = run_forward(bn, c.x, c.values(), false);
  EXPECT_TRUE(r.buffer_updates.empty());
  std::vector<double> xv = c.x.to_doubles(), wv = c.w.to_doubles(), bv = c.b.to_doubles(),
                      rm = c.rm.to_doubles(), rv = c.rv.to_doubles(), expected;
  for (int64_t i = 0; i < N * C; ++i) {
    int64_t ch = i % C;
    expected.push_back((xv[i] - rm[ch]) / std::sqrt(rv[ch] + 1e-5) * wv[ch] + bv[ch]);
  }
  expect_close(r.y, {N, C}, expected);
}

TEST(NnLayers, BatchNormTrainingRejectsOneValuePerChannel) {
  std::mt19937_64 rng(16);
  BnCase c{random_tensor({1, 3}, rng), random_tensor({3}, rng), random_tensor({3}, rng),
           random_tensor({3}, rng), random_tensor({3}, rng, 0.5, 2.0)};
  EXPECT_THROW(run_forward(BatchNorm1d(3), c.x, c.values(), true), Error);
}

TEST(NnLayers, LayerNormOverTrailingDims) {
  std::mt19937_64 rng(17);
  Tensor x = random_tensor({3, 4, 6}, rng, -2, 2), w = random_tensor({4, 6}, rng),
         b = random_tensor({4, 6}, rng);
  LayerNorm ln({4, 6}, 1e-4);
  auto r = run_forward(ln, x, {{"layer.weight", w}, {"layer.bias", b}}, true);
  std::vector<double> xv = x.to_doubles(), wv = w.to_doubles(), bv = b.to_doubles(),
                      expected(xv.size());
  for (int s = 0; s < 3; ++s) {
    double mean = 0, var = 0;
    for (int i = 0; i < 24; ++i) mean += xv[s * 24 + i] / 24;
    for (int i = 0; i < 24; ++i) var += std::pow(xv[s * 24 + i] - mean, 2) / 24;
    for (int i = 0; i < 24; ++i)
      expected[s * 24 + i] = (xv[s * 24 + i] - mean) / std::sqrt(var + 1e-4) * wv[i] + bv[i];
  }
  expect_close(r.y, {3, 4, 6}, expected);

  LayerNorm plain({6}, 1e-5, /*elementwise_affine*/ false);
  std::vector<ParamInfo> infos;
  plain.params("p", infos);
  EXPECT_TRUE(infos.empty());
  auto r2 = run_forward(plain, x, {}, true);
  std::vector<double> y2 = r2.y.to_doubles();
  double mean = 0;
  for (int i = 0; i < 6; ++i) mean += y2[i] / 6;
  EXPECT_NEAR(mean, 0.0, 1e-5);
}

TEST(NnLayers, DropoutIsIdentityInEvalAndPhiloxMaskedInTraining) {
  std::mt19937_64 rng(18);
  Tensor x = random_tensor({8, 50}, rng, 0.5, 1.5);  // never 0, so a zero output means dropped
  Dropout drop(0.3);
  auto eval = run_forward(drop, x, {}, false);
  EXPECT_EQ(eval.y.to_doubles(), x.to_doubles());
  EXPECT_EQ(eval.rng_offset_after, 0u);

  const uint64_t seed = 1234;
  auto train = run_forward(drop, x, {}, true, "layer", seed);
  std::vector<double> xv = x.to_doubles(), expected;
  int dropped = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    bool keep = philox_uniform(seed, 0, i) >= 0.3f;
    expected.push_back(keep ? xv[i] / 0.7 : 0.0);
    dropped += keep ? 0 : 1;
  }
  expect_close(train.y, {8, 50}, expected);
  EXPECT_GT(dropped, 60);
  EXPECT_LT(dropped, 180);
  EXPECT_EQ(train.rng_offset_after, philox_blocks(400));

  // Two dropouts in one graph draw different masks.
  Sequential seq;
  seq.add(std::make_unique<Dropout>(0.5));
  seq.add(std::make_unique<Dropout>(0.5));
  auto twice = run_forward(seq, x, {}, true, "", seed);
  auto once = run_forward(Dropout(0.5), x, {}, true, "", seed);
  EXPECT_EQ(twice.rng_offset_after, 2 * philox_blocks(400));
  std::vector<double> t = twice.y.to_doubles(), o = once.y.to_doubles();
  int differ = 0;
  for (size_t i = 0; i < t.size(); ++i) differ += (t[i] != 0) != (o[i] != 0);
  EXPECT_GT(differ, 50);
}

TEST(NnLayers, EmbeddingCastsFloatIndices) {
  std::mt19937_64 rng(19);
  Tensor weight = random_tensor({10, 4}, rng);
  std::vector<double> idx;
  for (int i = 0; i < 6; ++i) idx.push_back(static_cast<double>(rng() % 10));
  Tensor x = Tensor::from_values({2, 3}, idx, DType::f32);
  auto r = run_forward(Embedding(10, 4), x, {{"layer.weight", weight}}, true);
  std::vector<double> wv = weight.to_doubles(), expected;
  for (double i : idx)
    for (int d = 0; d < 4; ++d) expected.push_back(wv[static_cast<size_t>(i) * 4 + d]);
  expect_close(r.y, {2, 3, 4}, expected);
}

TEST(NnLayers, ActivationsAndFlatten) {
  std::mt19937_64 rng(20);
  Tensor x = random_tensor({3, 2, 5}, rng, -3, 3);
  std::vector<double> xv = x.to_doubles();
  auto check = [&](const Module& m, double (*f)(double)) {
    std::vector<double> expected;
    for (double v : xv) expected.push_back(f(v));
    expect_close(run_forward(m, x, {}, true).y, {3, 2, 5}, expected);
  };
  check(ReLU(), [](double v) { return v > 0 ? v : 0.0; });
  check(Tanh(), [](double v) { return std::tanh(v); });
  check(Sigmoid(), [](double v) { return 1 / (1 + std::exp(-v)); });
  check(GELU(), [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); });
  check(GELU(true), [](double v) {
    return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
  });
  auto flat = run_forward(Flatten(), x, {}, true);
  expect_close(flat.y, {3, 10}, xv);
  EXPECT_EQ(Flatten().output_shape({2, 5}), (Shape{10}));
}

}  // namespace
}  // namespace gpuml::nn
