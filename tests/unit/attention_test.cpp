// Scaled dot-product attention (issue 20): the cpu kernels (tiled over keys, online softmax)
// against ref over sequence lengths that no tile divides and the head dims GPT models use; the
// causal alignment a KV-cache decode step relies on; strided q, k, v as a fused qkv projection
// gives them; dropout's Philox numbers; the kept log-sum-exp; ref's attention against the
// composite it replaces (matmul, softmax, matmul); and float64 gradients on the cpu backend.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/dispatch.h"
#include "core/philox.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "graph_test_util.h"
#include "op_samples.h"

namespace gpuml {
namespace {

using testing::expect_close;
using testing::random_tensor;

Backend& ref() { return backend_registry().reference(); }
Backend& cpu() { return backend_registry().get("cpu"); }

PlanOptions only_on(Backend& backend) {
  PlanOptions o;
  o.backends = {&backend};
  return o;
}

std::mt19937_64 fresh_rng() {
  const uint64_t seed = std::random_device{}();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return std::mt19937_64(seed);
}

double tolerance(DType dtype) { return dtype == DType::f64 ? 1e-10 : 2e-4; }

struct Qkv {
  Tensor q, k, v;
};
Qkv random_qkv(int64_t b, int64_t h, int64_t tq, int64_t tk, int64_t d, std::mt19937_64& rng, DType dtype) {
  return {random_tensor({b, h, tq, d}, rng, dtype), random_tensor({b, h, tk, d}, rng, dtype),
          random_tensor({b, h, tk, d}, rng, dtype)};
}

// Forward (o, lse) and backward (dq, dk, dv, fed ref's o and lse and a random do) on cpu and ref.
void expect_cpu_matches_ref(const Qkv& x, const Attrs& a, std::mt19937_64& rng) {
  const DType dtype = x.q.dtype();
  const double tol = tolerance(dtype);
  std::vector<Tensor> want = run_op_outputs(ref(), OpId::attention, {x.q, x.k, x.v}, a);
  std::vector<Tensor> got = run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, a);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(testing::all_close(got[0], want[0], tol)) << "o";
  EXPECT_TRUE(testing::all_close(got[1], want[1], tol)) << "lse";
  const Tensor dout = random_tensor(x.q.shape(), rng, dtype);
  const std::vector<Tensor> inputs{x.q, x.k, x.v, want[0], dout, want[1]};
  std::vector<Tensor> want_grads = run_op_outputs(ref(), OpId::attention_backward, inputs, a);
  std::vector<Tensor> got_grads = run_op_outputs(cpu(), OpId::attention_backward, inputs, a);
  ASSERT_EQ(got_grads.size(), 3u);
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(testing::all_close(got_grads[i], want_grads[i], tol)) << names[i];
}

Attrs causal_attrs(bool causal) { return attention_attrs(causal); }

// T of 1, 7, 65 and 130 (no tile divides them) and the head dims of GPT models, causal or not.
TEST(Attention, CpuMatchesRefOverLengthsAndHeadDims) {
  std::mt19937_64 rng = fresh_rng();
  for (int64_t t : {1, 7, 65, 130})
    for (int64_t d : {16, 32, 64, 80, 128})
      for (bool causal : {false, true}) {
        const DType dtype = d == 32 ? DType::f64 : DType::f32;
        SCOPED_TRACE(fmt::format("T {} D {} causal {} {}", t, d, causal, dtype));
        expect_cpu_matches_ref(random_qkv(1, 2, t, t, d, rng, dtype), causal_attrs(causal), rng);
      }
}

// Tq != Tk: every key for a non-causal attention; bottom-right causal alignment otherwise.
TEST(Attention, CpuMatchesRefWithFewerQueriesThanKeys) {
  std::mt19937_64 rng = fresh_rng();
  for (auto [tq, tk] : {std::pair<int64_t, int64_t>{1, 1}, {1, 70}, {3, 130}, {64, 65}, {33, 100}})
    for (bool causal : {false, true}) {
      SCOPED_TRACE(fmt::format("Tq {} Tk {} causal {}", tq, tk, causal));
      expect_cpu_matches_ref(random_qkv(2, 3, tq, tk, 16, rng, DType::f32), causal_attrs(causal), rng);
    }
}

TEST(Attention, CpuMatchesRefInBf16) {
  std::mt19937_64 rng = fresh_rng();
  const Qkv x = random_qkv(2, 2, 37, 37, 32, rng, DType::bf16);
  const Attrs a = causal_attrs(true);
  std::vector<Tensor> want = run_op_outputs(ref(), OpId::attention, {x.q, x.k, x.v}, a);
  std::vector<Tensor> got = run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, a);
  EXPECT_EQ(got[0].dtype(), DType::bf16);
  EXPECT_EQ(got[1].dtype(), DType::f32);
  EXPECT_TRUE(testing::all_close(got[0], want[0], 3e-2));
  EXPECT_TRUE(testing::all_close(got[1], want[1], 1e-4));
}

// A KV-cache decode step: the last query alone (Tq = 1) against all Tk keys, causal, gives the
// last row of the full causal attention; the last 5 queries give its last 5 rows.
TEST(Attention, CausalAlignsTheLastQueryWithTheLastKey) {
  std::mt19937_64 rng = fresh_rng();
  const int64_t t = 37;
  const Qkv x = random_qkv(2, 2, t, t, 16, rng, DType::f64);
  const Attrs a = causal_attrs(true);
  for (Backend* backend : {&ref(), &cpu()}) {
    SCOPED_TRACE(backend->name());
    std::vector<Tensor> full = run_op_outputs(*backend, OpId::attention, {x.q, x.k, x.v}, a);
    for (int64_t tq : {1, 5}) {
      std::vector<Tensor> tail = run_op_outputs(*backend, OpId::attention, {x.q.slice(2, t - tq, t), x.k, x.v}, a);
      expect_close(tail[0], contiguous(full[0].slice(2, t - tq, t), ref()), 1e-12);
      expect_close(tail[1], contiguous(full[1].slice(2, t - tq, t), ref()), 1e-12);
    }
    // The decode step sees every key: causal or not, the same.
    const Tensor last = x.q.slice(2, t - 1, t);
    expect_close(run_op_outputs(*backend, OpId::attention, {last, x.k, x.v}, a)[0],
                 run_op_outputs(*backend, OpId::attention, {last, x.k, x.v}, causal_attrs(false))[0], 1e-12);
  }
}

// q, k, v as a GPT block makes them: slices of a fused (B, T, 3C) projection, reshaped to
// (B, T, H, D) and permuted to (B, H, T, D); the kernels read these views in place.
TEST(Attention, ReadsStridedViewsOfAFusedProjection) {
  std::mt19937_64 rng = fresh_rng();
  const int64_t b = 2, t = 67, h = 3, d = 16, c = h * d;
  const Tensor qkv = random_tensor({b, t, 3 * c}, rng, DType::f32);
  auto head = [&](int64_t part) {
    return qkv.view_as({b, t, h, d}, {t * 3 * c, 3 * c, d, 1}, part * c).permute({0, 2, 1, 3});
  };
  const Tensor q = head(0), k = head(1), v = head(2);
  ASSERT_FALSE(q.is_contiguous());
  const Tensor qc = contiguous(q, ref()), kc = contiguous(k, ref()), vc = contiguous(v, ref());
  ASSERT_EQ(qc.to_doubles(), q.to_doubles());
  const Attrs a = causal_attrs(true);
  std::vector<Tensor> strided = run_op_outputs(cpu(), OpId::attention, {q, k, v}, a);
  std::vector<Tensor> dense = run_op_outputs(cpu(), OpId::attention, {qc, kc, vc}, a);
  EXPECT_EQ(strided[0].to_doubles(), dense[0].to_doubles());
  EXPECT_EQ(strided[1].to_doubles(), dense[1].to_doubles());
  expect_close(strided[0], run_op_outputs(ref(), OpId::attention, {q, k, v}, a)[0], 2e-4);
  // The backward too, with do and o strided as well.
  const Tensor dout = random_tensor({b, t, c}, rng).view_as({b, t, h, d}, {t * c, c, d, 1}, 0).permute({0, 2, 1, 3});
  const std::vector<Tensor> in_strided{q, k, v, dense[0], dout, dense[1]};
  const std::vector<Tensor> in_dense{qc, kc, vc, dense[0], contiguous(dout, ref()), dense[1]};
  std::vector<Tensor> g_strided = run_op_outputs(cpu(), OpId::attention_backward, in_strided, a);
  std::vector<Tensor> g_dense = run_op_outputs(cpu(), OpId::attention_backward, in_dense, a);
  std::vector<Tensor> g_ref = run_op_outputs(ref(), OpId::attention_backward, in_strided, a);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(g_strided[i].to_doubles(), g_dense[i].to_doubles()) << i;
    expect_close(g_strided[i], g_ref[i], 2e-4);
  }
}

// lse is log(sum_j exp(s_ij)) over the keys query i sees, s = q k^T * scale.
TEST(Attention, KeepsTheRowLogSumExpOfTheScaledScores) {
  std::mt19937_64 rng = fresh_rng();
  const int64_t t = 9, d = 8;
  const Qkv x = random_qkv(1, 2, t, t, d, rng, DType::f64);
  for (double scale : {0.0, 0.7}) {
    const Attrs a = attention_attrs(true, 0.0, 0, 0, true, scale);
    const double s = scale == 0.0 ? 1.0 / std::sqrt(static_cast<double>(d)) : scale;
    const std::vector<double> q = x.q.to_doubles(), k = x.k.to_doubles();
    for (Backend* backend : {&ref(), &cpu()}) {
      const std::vector<double> lse = run_op_outputs(*backend, OpId::attention, {x.q, x.k, x.v}, a)[1].to_doubles();
      ASSERT_EQ(lse.size(), 2u * t);
      for (int64_t hi = 0; hi < 2; ++hi)
        for (int64_t i = 0; i < t; ++i) {
          double sum = 0;
          for (int64_t j = 0; j <= i; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < d; ++e) dot += q[(hi * t + i) * d + e] * k[(hi * t + j) * d + e];
            sum += std::exp(s * dot);
          }
          EXPECT_NEAR(lse[hi * t + i], std::log(sum), 1e-12) << backend->name() << " head " << hi << " row " << i;
        }
    }
  }
}

// The composite the op replaces (nn/transformer.cpp's before it): softmax(q k^T / sqrt(D) + causal
// mask), dropout on the probabilities with the same Philox stream, then @ v, on ref.
Tensor composite_attention(const Qkv& x, const Attrs& a) {
  Graph g;
  Sym q = g.input("q", {x.q.shape(), x.q.dtype()}), k = g.input("k", {x.k.shape(), x.k.dtype()});
  Sym v = g.input("v", {x.v.shape(), x.v.dtype()});
  const int64_t tq = x.q.dim(2), tk = x.k.dim(2);
  Sym scores = mul_scalar(matmul(q, k, false, true), 1.0 / std::sqrt(static_cast<double>(x.q.dim(3))));
  if (a.causal) {
    Sym rows = reshape(arange(g, tq, DType::i64, static_cast<double>(tk - tq)), {tq, 1});
    Sym cols = reshape(arange(g, tk, DType::i64), {1, tk});
    scores = where(ge(rows, cols), scores, fill(g, {}, -INFINITY, scores.dtype()));
  }
  Sym probs = softmax(scores, -1);
  if (a.training && a.p > 0) probs = dropout(probs, a.p, a.seed, a.offset, true);
  Sym o = matmul(probs, v);
  Executor ex(plan_graph(g, {o}, only_on(ref())));
  return ex.run({{"q", x.q}, {"k", x.k}, {"v", x.v}})[0];
}

TEST(Attention, EqualsTheCompositeOfMatmulSoftmaxDropoutMatmul) {
  std::mt19937_64 rng = fresh_rng();
  const Qkv x = random_qkv(2, 2, 11, 13, 8, rng, DType::f64);
  for (bool causal : {false, true})
    for (double p : {0.0, 0.4}) {
      SCOPED_TRACE(fmt::format("causal {} p {}", causal, p));
      const Attrs a = attention_attrs(causal, p, 1234, 56);
      const Tensor want = composite_attention(x, a);
      expect_close(run_op_outputs(ref(), OpId::attention, {x.q, x.k, x.v}, a)[0], want, 1e-12);
      expect_close(run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, a)[0], want, 1e-12);
    }
}

// Dropout: the same (seed, offset) gives the same result, another seed or offset another; p = 0
// and training = false are attention without dropout; cpu draws ref's numbers, backward included.
TEST(Attention, DropoutIsDeterministicAndMatchesRef) {
  std::mt19937_64 rng = fresh_rng();
  const Qkv x = random_qkv(2, 3, 70, 70, 16, rng, DType::f32);
  const Attrs drop = attention_attrs(true, 0.25, 99, 7);
  std::vector<Tensor> first = run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, drop);
  std::vector<Tensor> again = run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, drop);
  EXPECT_EQ(first[0].to_doubles(), again[0].to_doubles());
  Attrs other_seed = drop, other_offset = drop;
  other_seed.seed = 100;
  other_offset.offset = 8;
  EXPECT_NE(first[0].to_doubles(), run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, other_seed)[0].to_doubles());
  EXPECT_NE(first[0].to_doubles(), run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, other_offset)[0].to_doubles());
  // lse is taken before dropout: the same with or without it.
  const Attrs plain = attention_attrs(true);
  std::vector<Tensor> without = run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, plain);
  EXPECT_EQ(first[1].to_doubles(), without[1].to_doubles());
  EXPECT_NE(first[0].to_doubles(), without[0].to_doubles());
  Attrs p0 = drop, eval = drop;
  p0.p = 0.0;
  eval.training = false;
  EXPECT_EQ(run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, p0)[0].to_doubles(), without[0].to_doubles());
  EXPECT_EQ(run_op_outputs(cpu(), OpId::attention, {x.q, x.k, x.v}, eval)[0].to_doubles(), without[0].to_doubles());
  expect_cpu_matches_ref(x, drop, rng);
  expect_cpu_matches_ref(random_qkv(1, 2, 5, 130, 32, rng, DType::f64), attention_attrs(true, 0.5, 3, 1000), rng);
}

// The executor shifts attention's Philox offset by a step's rng offset (draws_philox), as it does
// dropout's: a run with rng_offset 5 draws what attrs.offset + 5 draws.
TEST(Attention, ExecutorShiftsTheDropoutStreamEachStep) {
  std::mt19937_64 rng = fresh_rng();
  const Qkv x = random_qkv(1, 2, 10, 10, 8, rng, DType::f32);
  auto run = [&](uint64_t attr_offset, uint64_t rng_offset) {
    Graph g;
    Sym q = g.input("q", {x.q.shape(), x.q.dtype()}), k = g.input("k", {x.k.shape(), x.k.dtype()});
    Sym v = g.input("v", {x.v.shape(), x.v.dtype()});
    Sym o = attention(q, k, v, true, 0.5, 11, attr_offset);
    Executor ex(plan_graph(g, {o}, only_on(cpu())));
    RunOptions options;
    options.rng_offset = rng_offset;
    return ex.run({{"q", x.q}, {"k", x.k}, {"v", x.v}}, options)[0].to_doubles();
  };
  EXPECT_EQ(run(0, 5), run(5, 0));
  EXPECT_NE(run(0, 5), run(0, 0));
}

// The builder: o only (lse stays an output of the node for the gradient rule), bf16 under bf16
// autocast, and the type rules' refusals.
TEST(Attention, BuilderAndTypeRules) {
  Graph g;
  Sym q = g.input("q", {{2, 4, 6, 16}, DType::bf16}), k = g.input("k", {{2, 4, 9, 16}, DType::bf16});
  g.set_autocast(Autocast::bf16);
  Sym o = attention(q, k, k, true);
  EXPECT_EQ(o.shape(), (Shape{2, 4, 6, 16}));
  EXPECT_EQ(o.dtype(), DType::bf16);  // in torch.autocast's lower-precision list: bf16 in, bf16 out
  EXPECT_EQ(g.output_count(o.id), 2);
  // f32 q, k, v are cast down under autocast, as a matmul's operands are.
  Sym qf = g.input("qf", {{2, 4, 6, 16}, DType::f32});
  EXPECT_EQ(attention(qf, qf, qf, true).dtype(), DType::bf16);
  const TensorType tq{{2, 4, 6, 16}, DType::f32}, tk{{2, 4, 9, 16}, DType::f32};
  std::vector<TensorType> out = infer_types(OpId::attention, std::vector<TensorType>{tq, tk, tk}, attention_attrs(true));
  EXPECT_EQ(out[1], (TensorType{{2, 4, 6}, DType::f32}));
  EXPECT_EQ(infer_types(OpId::attention, std::vector<TensorType>{{{1, 1, 2, 4}, DType::f64}, {{1, 1, 2, 4}, DType::f64},
                                                               {{1, 1, 2, 4}, DType::f64}}, {})[1].dtype,
            DType::f64);
  auto refused = [](std::vector<TensorType> in, const Attrs& a) {
    try {
      infer_types(OpId::attention, in, a);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(refused({tk, tq, tq}, attention_attrs(true)).find("causal with Tq 9 > Tk 6"), std::string::npos);
  EXPECT_EQ(refused({tk, tq, tq}, attention_attrs(false)), "");  // more queries than keys: fine without a mask
  EXPECT_NE(refused({tq, {{2, 4, 9, 8}, DType::f32}, tk}, {}).find("same batch, heads and head dim"), std::string::npos);
  EXPECT_NE(refused({tq, tk, {{2, 4, 9, 16}, DType::f64}}, {}).find("different dtypes"), std::string::npos);
  EXPECT_NE(refused({{{6, 16}, DType::f32}, tk, tk}, {}).find("must have 4 dims"), std::string::npos);
  EXPECT_NE(refused({tq, tk, tk}, attention_attrs(false, 1.0)).find("dropout p"), std::string::npos);
  // The backward checks what the forward kept.
  auto backward = [&](TensorType lse) {
    return infer_types(OpId::attention_backward, std::vector<TensorType>{tq, tk, tk, tq, tq, lse}, {});
  };
  EXPECT_EQ(backward({{2, 4, 6}, DType::f32}).size(), 3u);
  EXPECT_THROW(backward({{2, 4, 6}, DType::f64}), Error);
  EXPECT_THROW(backward({{2, 4, 9}, DType::f32}), Error);
}

// float64 central differences of a loss of o and lse through the whole stack on the cpu backend
// (autodiff -> attention_backward's cpu kernel), at T past one key tile, causal or not, with dropout.
TEST(Attention, CpuGradientsMatchCentralDifferences) {
  std::mt19937_64 rng = fresh_rng();
  const int64_t b = 1, h = 2, tq = 70, tk = 70, d = 16;
  for (auto [causal, p] : {std::pair<bool, double>{false, 0.0}, {true, 0.0}, {true, 0.3}}) {
    SCOPED_TRACE(fmt::format("causal {} p {}", causal, p));
    const Qkv x = random_qkv(b, h, tq, tk, d, rng, DType::f64);
    Graph g;
    Sym q = g.input("q", {x.q.shape(), DType::f64}), k = g.input("k", {x.k.shape(), DType::f64});
    Sym v = g.input("v", {x.v.shape(), DType::f64});
    std::vector<Sym> outs = emit_outputs(OpId::attention, {q, k, v}, attention_attrs(causal, p, 5, 9));
    Sym loss = add(sum(mul(outs[0], g.input("r0", {outs[0].shape(), DType::f64}))),
                   sum(mul(outs[1], g.input("r1", {outs[1].shape(), DType::f64}))));
    std::vector<Sym> grads = gradients(g, loss, {q, k, v});
    std::map<std::string, Tensor> feeds{{"q", x.q}, {"k", x.k}, {"v", x.v},
                                        {"r0", random_tensor(outs[0].shape(), rng, DType::f64)},
                                        {"r1", random_tensor(outs[1].shape(), rng, DType::f64)}};
    Executor backward(plan_graph(g, {grads[0], grads[1], grads[2]}, only_on(cpu())));
    Executor forward(plan_graph(g, {loss}, only_on(cpu())));
    std::vector<Tensor> analytic = backward.run(feeds);
    const char* names[] = {"q", "k", "v"};
    for (int which = 0; which < 3; ++which) {
      const Tensor& base = feeds[names[which]];
      std::vector<double> values = base.to_doubles(), grad = analytic[which].to_doubles();
      int failures = 0;
      for (size_t j = 0; j < values.size() && failures < 5; j += 37) {  // a spread of elements
        auto loss_at = [&](double delta) {
          std::vector<double> moved = values;
          moved[j] += delta;
          std::map<std::string, Tensor> f = feeds;
          f[names[which]] = Tensor::from_values(base.shape(), moved, DType::f64);
          return forward.run(f)[0].item_as_double(0);
        };
        const double numeric = (loss_at(1e-6) - loss_at(-1e-6)) / 2e-6;
        if (std::abs(grad[j] - numeric) > 1e-6 * (1 + std::abs(numeric))) {
          ++failures;
          ADD_FAILURE() << names[which] << " element " << j << ": autodiff " << grad[j] << ", central difference "
                        << numeric;
        }
      }
    }
  }
}

}  // namespace
}  // namespace gpuml
