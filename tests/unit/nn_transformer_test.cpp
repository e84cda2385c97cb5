// The GPT layers (nn/transformer.h): torch_gpt.py's state_dict names, order and sizes, GPT-2's
// init, weight tying in files (both names written, either read), the JSON round trip, and the
// block's forward pass against a plain composition of ops written here.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "graph/planner.h"
#include "nn/model.h"
#include "nn/transformer.h"
#include "nn_test_util.h"

namespace gpuml::nn {
namespace {

Model cpu_small() { return Model::from_json(gpt_model_json(gpt_preset("cpu-small", 65))); }

TEST(NnTransformer, PresetHasThePeersNamesOrderAndSize) {
  Model m = cpu_small();
  // torch_gpt.py: GPT(65, 64, 4, 4, 128, 0.0); sum(p.numel() for p in model.parameters()) counts
  // the tied head once: 65*128 + 64*128 + 4 * (2*2*128 + 128*384 + 384 + 128*128 + 128 + 128*512
  // + 512 + 512*128 + 128) + 2*128.
  EXPECT_EQ(m.parameter_count(), 809856);
  std::vector<std::string> names;
  for (const ParamInfo& p : m.param_infos()) names.push_back(p.name);
  std::vector<std::string> first = {"wte.weight",          "wpe.weight",          "blocks.0.ln1.weight",
                                    "blocks.0.ln1.bias",   "blocks.0.ln2.weight", "blocks.0.ln2.bias",
                                    "blocks.0.qkv.weight", "blocks.0.qkv.bias",   "blocks.0.proj.weight",
                                    "blocks.0.proj.bias",  "blocks.0.fc1.weight", "blocks.0.fc1.bias",
                                    "blocks.0.fc2.weight", "blocks.0.fc2.bias"};
  ASSERT_EQ(names.size(), 2 + 4 * 12 + 2u);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 14), first);
  EXPECT_EQ(names[names.size() - 2], "ln_f.weight");
  EXPECT_EQ(names.back(), "ln_f.bias");
  ASSERT_EQ(m.ties().size(), 1u);
  EXPECT_EQ(m.ties()[0], (std::pair<std::string, std::string>{"head.weight", "wte.weight"}));
  EXPECT_EQ(Model::from_json(m.to_json()).to_json(), m.to_json());
}

TEST(NnTransformer, InitIsGpt2s) {
  Model m = cpu_small();
  auto v = m.init_values(5);
  auto stddev = [&](const std::string& name) {
    std::vector<double> x = v.at(name).to_doubles();
    double s = 0;
    for (double e : x) s += e * e;
    return std::sqrt(s / static_cast<double>(x.size()));
  };
  EXPECT_NEAR(stddev("wte.weight"), 0.02, 0.002);
  EXPECT_NEAR(stddev("blocks.0.qkv.weight"), 0.02, 0.001);
  EXPECT_NEAR(stddev("blocks.2.fc2.weight"), 0.02 / std::sqrt(8.0), 0.0005);
  EXPECT_NEAR(stddev("blocks.1.proj.weight"), 0.02 / std::sqrt(8.0), 0.0005);
  EXPECT_EQ(stddev("blocks.0.qkv.bias"), 0.0);
  EXPECT_EQ(v.at("blocks.3.ln2.weight").to_doubles(), std::vector<double>(128, 1.0));
}

TEST(NnTransformer, TiedWeightsAreWrittenUnderBothNamesAndReadFromEither) {
  Model m = cpu_small();
  std::vector<std::pair<std::string, Tensor>> values;
  for (auto& [name, t] : m.init_values(1)) values.emplace_back(name, t);
  auto both = m.with_ties(values);
  ASSERT_EQ(both.size(), values.size() + 1);
  EXPECT_EQ(both.back().first, "head.weight");
  EXPECT_EQ(both.back().second.to_doubles(), m.init_values(1).at("wte.weight").to_doubles());
  EXPECT_EQ(m.untie(both).size(), values.size());

  // Only the alias: it becomes the source.
  std::vector<std::pair<std::string, Tensor>> head_only;
  for (auto& [name, t] : both)
    if (name != "wte.weight") head_only.emplace_back(name, t);
  auto untied = m.untie(head_only);
  EXPECT_TRUE(std::any_of(untied.begin(), untied.end(), [](const auto& w) { return w.first == "wte.weight"; }));
  EXPECT_FALSE(std::any_of(untied.begin(), untied.end(), [](const auto& w) { return w.first == "head.weight"; }));

  // Both, with different values: refused, naming them.
  both.back().second = Tensor::from_values(both.back().second.shape(),
                                           std::vector<double>(static_cast<size_t>(65 * 128), 0.5), DType::f32);
  try {
    m.untie(both);
    FAIL() << "different tied values were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tied weights 'head.weight' and 'wte.weight' hold different values"),
              std::string::npos)
        << e.what();
  }
}

TEST(NnTransformer, TyingToAnUnknownParameterIsRefused) {
  nlohmann::json spec = gpt_model_json(gpt_preset("cpu-small", 65));
  spec["layers"].back()["tied_to"] = "wte.wieght";
  try {
    Model::from_json(spec);
    FAIL() << "a tie to a missing parameter was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'head.weight' is tied to 'wte.wieght', which is no parameter"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("wte.weight"), std::string::npos) << e.what();
  }
}

TEST(NnTransformer, BadLayerFieldsAreRefusedNamingTheProblem) {
  auto refused = [](nlohmann::json spec, const std::string& expected) {
    try {
      Model::from_json(spec);
      ADD_FAILURE() << "accepted: " << spec.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  nlohmann::json spec = gpt_model_json(gpt_preset("cpu-small", 65));
  nlohmann::json heads = spec;
  heads["layers"][2]["layers"][0]["n_head"] = 3;
  refused(heads, "n_embd 128 must be divisible by n_head 3");
  nlohmann::json longer = spec;
  longer["input_shape"] = {65};
  refused(longer, "a sequence of 65 positions is longer than the 64 this layer has");
  nlohmann::json drop = spec;
  drop["layers"][2]["layers"][0]["dropout"] = 1.0;
  refused(drop, "dropout must be in [0, 1)");
}

// In inference the MLP's gelu joins fc1's product (one matmul_bias_act with the activation): fc1
// applies it before reshaping its (N*T, 4C) product back to (N, T, 4C), where the fusion pass
// sees it. In training gelu's backward reads its input, so only the bias joins there.
TEST(NnTransformer, InferenceFusesTheMlpGeluIntoItsProduct) {
  TransformerBlock block(8, 2);
  std::vector<ParamInfo> infos;
  block.params("b", infos);
  for (bool training : {false, true}) {
    Graph g;
    Sym x = g.input("x", {{2, 5, 8}, DType::f32});
    std::map<std::string, Sym> leaves = declare_params(g, infos);
    ForwardContext ctx{g, training, [&](const std::string& n) { return leaves.at(n); }};
    Sym y = block.forward(x, ctx, "b");
    Plan plan = plan_graph(g, {y});
    int with_gelu = 0, gelu = 0;
    for (const PlanStep& s : plan.steps) {
      if (s.kind != StepKind::Kernel) continue;
      with_gelu += s.op == OpId::matmul_bias_act && s.attrs.activation == Activation::gelu && s.attrs.gelu_tanh;
      gelu += s.op == OpId::gelu;
    }
    // A forward-only plan of the training graph has no backward to keep gelu's input for.
    EXPECT_EQ(with_gelu, 1) << (training ? "training" : "inference") << "\n" << plan.to_string();
    EXPECT_EQ(gelu, 0) << plan.to_string();
  }
}

// The block against the same arithmetic done by hand on the host, for one sequence.
TEST(NnTransformer, BlockForwardMatchesAHandComputation) {
  const int64_t t = 5, c = 8, heads = 2, d = c / heads;
  TransformerBlock block(c, heads);
  std::vector<ParamInfo> infos;
  block.params("b", infos);
  std::mt19937_64 rng(11);
  std::map<std::string, Tensor> values;
  for (const ParamInfo& p : infos) values[p.name] = testing::random_tensor(p.shape, rng, -0.5, 0.5);
  Tensor x = testing::random_tensor({1, t, c}, rng);
  Tensor y = testing::run_forward(block, x, values, /*training*/ false, "b").y;

  auto w = [&](const std::string& n) { return values.at("b." + n).to_doubles(); };
  using Mat = std::vector<std::vector<double>>;
  auto ln = [&](const Mat& in, const std::string& n) {
    Mat out = in;
    for (auto& row : out) {
      double mean = 0, var = 0;
      for (double e : row) mean += e / c;
      for (double e : row) var += (e - mean) * (e - mean) / c;
      for (int64_t i = 0; i < c; ++i) row[i] = (row[i] - mean) / std::sqrt(var + 1e-5) * w(n + ".weight")[i] + w(n + ".bias")[i];
    }
    return out;
  };
  auto linear = [&](const Mat& in, const std::string& n, int64_t out_f) {
    std::vector<double> wt = w(n + ".weight"), b = w(n + ".bias");
    const auto in_f = static_cast<int64_t>(in[0].size());
    Mat out(in.size(), std::vector<double>(out_f));
    for (size_t r = 0; r < in.size(); ++r)
      for (int64_t o = 0; o < out_f; ++o) {
        double s = b[o];
        for (int64_t i = 0; i < in_f; ++i) s += in[r][i] * wt[o * in_f + i];
        out[r][o] = s;
      }
    return out;
  };
  std::vector<double> xv = x.to_doubles();
  Mat h(t, std::vector<double>(c));
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < c; ++j) h[i][j] = xv[i * c + j];
  Mat qkv = linear(ln(h, "ln1"), "qkv", 3 * c), att(t, std::vector<double>(c, 0.0));
  for (int64_t hd = 0; hd < heads; ++hd)
    for (int64_t i = 0; i < t; ++i) {
      std::vector<double> s(i + 1);
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += qkv[i][hd * d + k] * qkv[j][c + hd * d + k];
        mx = std::max(mx, s[j] = dot / std::sqrt(static_cast<double>(d)));
      }
      for (double& e : s) z += e = std::exp(e - mx);
      for (int64_t j = 0; j <= i; ++j)
        for (int64_t k = 0; k < d; ++k) att[i][hd * d + k] += s[j] / z * qkv[j][2 * c + hd * d + k];
    }
  Mat proj = linear(att, "proj", c);
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < c; ++j) h[i][j] += proj[i][j];
  Mat f = linear(ln(h, "ln2"), "fc1", 4 * c);
  for (auto& row : f)
    for (double& e : row) e = 0.5 * e * (1 + std::tanh(std::sqrt(2 / M_PI) * (e + 0.044715 * e * e * e)));
  Mat f2 = linear(f, "fc2", c);
  std::vector<double> got = y.to_doubles();
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < c; ++j) EXPECT_NEAR(got[i * c + j], h[i][j] + f2[i][j], 2e-5) << i << "," << j;
}

}  // namespace
}  // namespace gpuml::nn
