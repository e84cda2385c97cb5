// --precision and --deterministic below the trainer: bf16 autocast while building graphs
// (ops/build.h), the planner's TF32 and determinism attributes, mixed-precision training steps
// against f32 ones, and CPU reductions that add their threads' partial sums in a fixed order.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "backend/dispatch.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "nn/model.h"
#include "train/model_runner.h"
#include "core/system_info.h"
#include "train/precision.h"

namespace gpuml {
namespace {

Tensor random_f32(const Shape& shape, std::mt19937_64& rng, double scale = 1.0) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::normal_distribution<double>(0.0, scale)(rng);
  return Tensor::from_values(shape, v, DType::f32);
}

int count_ops(const Graph& g, OpId op, DType out_dtype) {
  int n = 0;
  for (int i = 0; i < g.size(); ++i)
    n += g.node(i).role == NodeRole::Op && g.node(i).op == op && g.node(i).type.dtype == out_dtype;
  return n;
}

// A two-layer perceptron with a bias, its cross-entropy loss and the gradients of its weights.
struct Mlp {
  Graph g;
  Sym x, y, w1, b1, w2, loss;
  std::vector<Sym> grads;
  explicit Mlp(Autocast mode, Sym (*activation)(Sym) = relu) {
    x = g.input("x", {{16, 12}, DType::f32});
    y = g.input("y", {{16}, DType::i64});
    w1 = g.param("w1", {{20, 12}, DType::f32});
    b1 = g.param("b1", {{20}, DType::f32});
    w2 = g.param("w2", {{5, 20}, DType::f32});
    g.set_autocast(mode);
    Sym h = activation(add(matmul(x, w1, false, true), b1));
    loss = cross_entropy(matmul(h, w2, false, true), y);
    grads = gradients(g, loss, {w1, b1, w2});
  }
};

TEST(Autocast, Bf16PutsMatmulsAndActivationsInBf16AndKeepsLossAndWeightGradientsInF32) {
  Mlp m(Autocast::bf16);
  EXPECT_EQ(m.loss.dtype(), DType::f32);
  for (Sym grad : m.grads) EXPECT_EQ(grad.dtype(), DType::f32) << m.g.to_string();
  // Both forward matmuls and the four backward ones (dh, dw2, dw1, and dx, which the matmul rule
  // emits and the planner drops) are bf16; none is f32.
  EXPECT_EQ(count_ops(m.g, OpId::matmul, DType::bf16), 6) << m.g.to_string();
  EXPECT_EQ(count_ops(m.g, OpId::matmul, DType::f32), 0);
  // The bias add stays bf16 (the bias is cast down, not the activation up), and so does relu.
  EXPECT_EQ(count_ops(m.g, OpId::add, DType::bf16), 1);
  EXPECT_EQ(count_ops(m.g, OpId::relu, DType::bf16), 1);
  EXPECT_EQ(count_ops(m.g, OpId::cross_entropy, DType::f32), 1);
  // Autodiff restores the builder's mode when it returns.
  EXPECT_EQ(m.g.autocast(), Autocast::bf16);
}

TEST(Autocast, OffBuildsTheSameGraphAsBefore) {
  Mlp m(Autocast::off);
  EXPECT_EQ(count_ops(m.g, OpId::matmul, DType::bf16), 0);
  EXPECT_EQ(count_ops(m.g, OpId::cast, DType::bf16), 0);
  for (int i = 0; i < m.g.size(); ++i) EXPECT_NE(m.g.node(i).type.dtype, DType::bf16) << m.g.to_string();
}

TEST(Autocast, IntegerAndF64ValuesAreLeftAlone) {
  Graph g;
  g.set_autocast(Autocast::bf16);
  Sym a = g.input("a", {{3, 4}, DType::f64});
  Sym b = g.input("b", {{4, 2}, DType::f64});
  Sym i = g.input("i", {{3}, DType::i64});
  // As in torch.autocast, f64 is left alone: who asks for f64 wants it.
  EXPECT_EQ(matmul(a, b).dtype(), DType::f64);
  // Integer arithmetic and comparisons never change.
  EXPECT_EQ(add(i, i).dtype(), DType::i64);
  EXPECT_EQ(eq(i, i).dtype(), DType::boolean);
  // A reduction of an f64 value stays f64 (only bf16 is raised).
  EXPECT_EQ(sum(a).dtype(), DType::f64);
}

// A bf16 x keeps its type through layer_norm beside f32 parameters: no cast up and back down, and
// the parameters' gradients come out f32 from the backward op itself.
TEST(Autocast, LayerNormTakesBf16XWithF32ParametersWithoutCasts) {
  Graph g;
  g.set_autocast(Autocast::bf16);
  Sym x = g.input("x", {{6, 8}, DType::bf16});
  Sym w = g.param("w", {{8}, DType::f32}), b = g.param("b", {{8}, DType::f32});
  Sym y = layer_norm(x, w, b);
  EXPECT_EQ(y.dtype(), DType::bf16);
  EXPECT_EQ(count_ops(g, OpId::cast, DType::f32) + count_ops(g, OpId::cast, DType::bf16), 0) << g.to_string();
  std::vector<Sym> grads = gradients(g, sum(y), {x, w, b});
  EXPECT_EQ(grads[0].dtype(), DType::bf16);
  EXPECT_EQ(grads[1].dtype(), DType::f32);
  EXPECT_EQ(grads[2].dtype(), DType::f32);
  // An f32 x is left as it is, and autocast off keeps refusing mixed types only where they are not
  // bf16/f16 beside f32.
  Graph plain;
  Sym xf = plain.input("x", {{6, 8}, DType::f32});
  EXPECT_EQ(layer_norm(xf, plain.param("w", {{8}, DType::f32}), plain.param("b", {{8}, DType::f32})).dtype(),
            DType::f32);
  EXPECT_THROW(layer_norm(plain.input("x16", {{6, 8}, DType::f32}), plain.param("w16", {{8}, DType::bf16}),
                          plain.param("b16", {{8}, DType::bf16})),
               Error);
}

// The bf16 gradients approximate the f32 ones: bf16 keeps 8 bits of mantissa, so a few parts in
// a hundred, summed over the batch. Both graphs run on the same fresh random inputs. The hidden
// activation is tanh: with relu, a pre-activation that rounds across zero in bf16 switches a
// whole row of the gradient (a different function, not a gradient error), and 1 run in 3 went
// past 3%; with tanh the worst of 3000 runs was 1.7%.
TEST(Autocast, Bf16GradientsAreCloseToF32Gradients) {
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, Tensor> feeds{{"x", random_f32({16, 12}, rng)},
                                      {"w1", random_f32({20, 12}, rng, 0.3)},
                                      {"b1", random_f32({20}, rng, 0.3)},
                                      {"w2", random_f32({5, 20}, rng, 0.3)}};
  std::vector<double> labels(16);
  for (double& l : labels) l = static_cast<double>(rng() % 5);
  feeds["y"] = Tensor::from_values({16}, labels, DType::i64);
  auto run = [&](Autocast mode) {
    Mlp m(mode, [](Sym v) { return gpuml::tanh(v); });
    std::vector<Sym> outputs{m.loss};
    outputs.insert(outputs.end(), m.grads.begin(), m.grads.end());
    return Executor(plan_graph(m.g, outputs)).run(feeds);
  };
  std::vector<Tensor> full = run(Autocast::off), mixed = run(Autocast::bf16);
  EXPECT_NEAR(mixed[0].item_as_double(0), full[0].item_as_double(0), 0.02 * std::abs(full[0].item_as_double(0)));
  for (size_t k = 1; k < full.size(); ++k) {
    std::vector<double> a = full[k].to_doubles(), b = mixed[k].to_doubles();
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff += (a[i] - b[i]) * (a[i] - b[i]);
      norm += a[i] * a[i];
    }
    EXPECT_LT(std::sqrt(diff / norm), 0.03) << "gradient " << k;
    EXPECT_GT(norm, 0.0);
  }
}

TEST(Precision, ParsesTheThreeNamesAndRefusesOthersNamingThem) {
  EXPECT_EQ(parse_precision("fp32"), Precision::fp32);
  EXPECT_EQ(parse_precision("tf32"), Precision::tf32);
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
  for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  try {
    parse_precision("fp16");
    FAIL() << "fp16 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp32, tf32 or bf16"), std::string::npos) << e.what();
  }
}

TEST(Precision, Tf32OnACpuIsNamedInTheNote) {
  Backend& cpu = backend_registry().get("cpu");
  EXPECT_EQ(precision_note(Precision::fp32, cpu), "");
  EXPECT_NE(precision_note(Precision::tf32, cpu).find("no TF32"), std::string::npos);
  // The reference backend has every bf16 kernel, so there is nothing to say about bf16 on it.
  EXPECT_EQ(precision_note(Precision::bf16, backend_registry().reference()), "");
}

// On a CPU without bf16 arithmetic the cpu backend emulates it, slower than fp32: the note says so.
TEST(Precision, Bf16WithoutBf16ArithmeticIsNamedInTheNote) {
  CpuFeatures f = detect_cpu_features();
  std::string note = precision_note(Precision::bf16, backend_registry().get("cpu"));
  if (f.avx512_bf16 || f.amx_bf16)
    EXPECT_EQ(note, "") << cpu_features_str(f);
  else
    EXPECT_NE(note.find("no bf16 arithmetic"), std::string::npos) << note;
}

// The planner sets allow_tf32 on f32 matmul/conv steps only and deterministic on every step.
TEST(PlannerAttrs, Tf32GoesToMatmulAndConvStepsAndDeterministicToAll) {
  Graph g;
  Sym x = g.input("x", {{2, 3, 6, 6}, DType::f32});
  Sym w = g.input("w", {{4, 3, 3, 3}, DType::f32});
  Sym m = g.input("m", {{5, 7}, DType::f32});
  Sym out1 = sum(relu(conv2d(x, w, conv_attrs())));
  Sym out2 = sum(matmul(m, m, false, true));
  std::vector<Sym> grads = gradients(g, add(out1, out2), {w});
  PlanOptions options;
  options.backends = {&backend_registry().reference()};
  options.allow_tf32 = true;
  options.deterministic = true;
  Plan plan = plan_graph(g, {out1, out2, grads[0]}, options);
  int tensor_core_steps = 0;
  for (const PlanStep& s : plan.steps) {
    if (s.kind != StepKind::Kernel) continue;
    const bool matrix = s.op == OpId::matmul || s.op == OpId::conv2d || s.op == OpId::conv2d_backward_filter ||
                        s.op == OpId::conv2d_backward_data;
    EXPECT_EQ(s.attrs.allow_tf32, matrix) << op_name(s.op);
    EXPECT_TRUE(s.attrs.deterministic) << op_name(s.op);
    tensor_core_steps += matrix;
  }
  EXPECT_GE(tensor_core_steps, 3);  // conv2d, matmul, conv2d_backward_filter
  Plan plain = plan_graph(g, {out1, out2, grads[0]}, PlanOptions{options.backends});
  for (const PlanStep& s : plain.steps) EXPECT_FALSE(s.attrs.allow_tf32 || s.attrs.deterministic);
}

// A bf16 training step of the mlp preset: the loss is the f32 one within bf16's rounding, the
// plan runs its matmuls in bf16 on the cpu backend, and the master weights stay f32.
TEST(Precision, Bf16TrainingStepsTrackF32Steps) {
  std::mt19937_64 rng(std::random_device{}());
  nn::Model model = nn::Model::preset("mlp");
  Tensor x = random_f32({32, 1, 28, 28}, rng);
  std::vector<double> labels(32);
  for (double& l : labels) l = static_cast<double>(rng() % 10);
  Tensor y = Tensor::from_values({32}, labels, DType::i64);
  optim::OptimizerConfig adam;
  adam.kind = "adam";
  ModelRunner full(model, adam, {}, 7), mixed(model, adam, {}, 7, Precision::bf16);
  double first = 0;
  for (int step = 1; step <= 5; ++step) {
    double a = full.train_step(x, y, 1e-3, step, 0).loss, b = mixed.train_step(x, y, 1e-3, step, 0).loss;
    EXPECT_NEAR(b, a, 0.02 * a) << "step " << step;
    if (step == 1) first = b;
  }
  // Five steps on one batch lower its loss.
  EXPECT_LT(mixed.evaluate(x, y).loss_sum / 32, 0.9 * first);
  for (const auto& [name, t] : mixed.model_tensors()) EXPECT_EQ(t.dtype(), DType::f32) << name;
}

// The sum of one long row with more threads than cores: an OpenMP reduction(+) adds the threads'
// partials in the order they finish, which changes the last bits between runs; the cpu backend
// adds them in thread order, so every run gives the same bits.
TEST(CpuDeterminism, LongSumsAndTheLossGiveTheSameBitsEveryRun) {
  std::mt19937_64 rng(std::random_device{}());
  // f64 with mixed magnitudes, where the order of adding five partials shows in the result.
  std::vector<double> xv(1 << 18);
  double abs_sum = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    xv[i] = std::normal_distribution<double>(0.0, i % 7 == 0 ? 1e12 : 1.0)(rng);
    abs_sum += std::abs(xv[i]);
  }
  Tensor x = Tensor::from_values({1 << 18}, xv, DType::f64);
  Tensor logits = random_f32({4096, 10}, rng, 3.0);
  std::vector<double> labels(4096);
  for (double& l : labels) l = static_cast<double>(rng() % 10);
  Tensor y = Tensor::from_values({4096}, labels, DType::i64);
  Backend& cpu = backend_registry().get("cpu");
  const int saved = omp_get_max_threads();
  omp_set_num_threads(5);
  Attrs all;
  const double first_sum = run_op(cpu, OpId::sum, {x}, all).item_as_double(0);
  const double first_loss = run_op_outputs(cpu, OpId::cross_entropy, {logits, y}, Attrs{})[0].item_as_double(0);
  bool same = true;
  for (int i = 0; i < 300; ++i) {
    same &= run_op(cpu, OpId::sum, {x}, all).item_as_double(0) == first_sum;
    same &= run_op_outputs(cpu, OpId::cross_entropy, {logits, y}, Attrs{})[0].item_as_double(0) == first_loss;
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(same);
  // And the ordered sum is still the sum.
  EXPECT_NEAR(first_sum, run_op(backend_registry().reference(), OpId::sum, {x}, all).item_as_double(0),
              1e-12 * abs_sum);
}

}  // namespace
}  // namespace gpuml
