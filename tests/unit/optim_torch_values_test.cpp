// Values produced by PyTorch itself: the optimizer configs go through emit_update into a graph,
// run on each backend, and must land on torch.optim's numbers. The expected values were printed
// by tests/tools/optim_torch_reference.py (Debian python3-torch 1.13, float64) and pasted here.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "graph/executor.h"
#include "optim/optimizer.h"
#include "optim_test_util.h"

namespace gpuml {
namespace {

using optim::OptimizerConfig;
using optim_test::all_close;

const std::vector<double> kParams = {0.5, -1.25, 2.0, 0.125, -0.75};
const std::vector<std::vector<double>> kGrads = {
    {0.3, -0.2, 1.5, -0.05, 0.8},
    {-0.4, 0.1, 0.9, 0.25, -0.6},
    {0.2, 0.7, -1.1, 0.05, 0.35},
};

struct TorchCase {
  std::string name;
  OptimizerConfig config;
  std::vector<std::vector<double>> params_after_step;  // from torch, steps 1..3
};

OptimizerConfig config(std::string kind, double lr) {
  OptimizerConfig c;
  c.kind = std::move(kind);
  c.lr = lr;
  return c;
}

std::vector<TorchCase> torch_cases() {
  std::vector<TorchCase> cases;
  OptimizerConfig c = config("sgd", 0.1);
  c.weight_decay = 0.1;
  cases.push_back({"sgd_plain_wd", c,
                   {{0.465, -1.2175, 1.83, 0.12875, -0.8225},
                    {0.5003500000000001, -1.215325, 1.7217, 0.1024625, -0.754275},
                    {0.47534650000000006, -1.27317175, 1.814483, 0.09643787499999999, -0.78173225}}});
  c = config("sgd", 0.1);
  c.momentum = 0.9;
  cases.push_back({"sgd_momentum", c,
                   {{0.47, -1.23, 1.85, 0.13, -0.83},
                    {0.483, -1.222, 1.625, 0.1095, -0.842},
                    {0.4747, -1.2848, 1.5325, 0.08605, -0.8878}}});
  c = config("sgd", 0.05);
  c.momentum = 0.8;
  c.nesterov = true;
  c.weight_decay = 0.01;
  cases.push_back(
      {"sgd_nesterov_wd", c,
       {{0.47254999999999997, -1.230875, 1.8632, 0.1293875, -0.821325},
        {0.49836470499999996, -1.2319672124999999, 1.73188312, 0.10833105124999999, -0.7919458075},
        {0.48475696076549996, -1.29122456200875, 1.761016201192, 0.09694014930387498, -0.82355823227325}}});
  c = config("adam", 0.01);
  c.weight_decay = 0.1;
  cases.push_back({"adam_l2", c,
                   {{0.4900000002857143, -1.2400000003076923, 1.9900000000588236, 0.13499999733333404,
                     -0.759999999862069},
                    {0.49054058045878357, -1.2327693348978044, 1.9803323450177617, 0.1285764056739357,
                     -0.7598235390631323},
                    {0.48804416595790256, -1.2355846982652061, 1.9761089318300502, 0.12227502247942168,
                     -0.7613953440185759}}});
  c = config("adamw", 0.01);
  c.weight_decay = 0.1;
  c.beta1 = 0.8;
  c.beta2 = 0.95;
  cases.push_back({"adamw", c,
                   {{0.4895000003333333, -1.2387500005, 1.9880000000666667, 0.1348749980000004, -0.759249999875},
                    {0.4915156808342345, -1.2353866591709197, 1.97652263434145, 0.12834387364865507,
                     -0.7588061538099614},
                    {0.49007072098830584, -1.2403179367370276, 1.9725413071770985, 0.12225692456002589,
                     -0.7606375378686596}}});
  return cases;
}

// A graph holding only the update: inputs state, grad, hyper -> new state, planned on one backend.
struct UpdateGraph {
  Graph graph;
  std::unique_ptr<Executor> executor;

  UpdateGraph(const OptimizerConfig& c, int64_t count, DType dtype, const std::string& backend) {
    Sym state = graph.input("opt_state", {{optim::state_rows(c), count}, dtype});
    Sym grad = graph.input("grad", {{count}, dtype});
    Sym hyper = graph.input("hyper", {{3}, dtype});
    Sym next = optim::emit_update(c, state, grad, hyper, fill(graph, {count}, 1.0, dtype));  // one group
    PlanOptions options;
    options.backends = {&backend_registry().get(backend)};
    executor = std::make_unique<Executor>(plan_graph(graph, {next}, options));
  }
  Tensor step(const Tensor& state, const std::vector<double>& grad, const Tensor& hyper) {
    return executor->run({{"opt_state", state},
                          {"grad", Tensor::from_values({static_cast<int64_t>(grad.size())}, grad, state.dtype())},
                          {"hyper", hyper}})[0];
  }
};

std::vector<double> row0(const Tensor& state) {
  std::vector<double> all = state.to_doubles();
  return {all.begin(), all.begin() + state.shape()[1]};
}

class TorchValues : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(TorchValues, EveryOptimizerLandsOnTorchNumbers) {
  auto [backend, dtype] = GetParam();
  const double tol = dtype == DType::f64 ? 1e-13 : 2e-6;
  for (const TorchCase& tc : torch_cases()) {
    SCOPED_TRACE(tc.name);
    UpdateGraph g(tc.config, 5, dtype, backend);
    Tensor state = optim::initial_state(tc.config, Tensor::from_values({5}, kParams, dtype));
    for (int step = 1; step <= 3; ++step) {
      state = g.step(state, kGrads[step - 1], optim::hyper_values(tc.config, tc.config.lr, step, dtype));
      EXPECT_TRUE(all_close(row0(state), tc.params_after_step[step - 1], tol)) << "step " << step;
    }
  }
}

// torch.nn.utils.clip_grad_norm_ over two tensors with the gradients kGrads[0] and kGrads[1]
// (total norm 2.103568396796263). Checked through sgd with lr 1: new param = param - clipped grad.
TEST_P(TorchValues, ClippingScalesLikeClipGradNorm) {
  auto [backend, dtype] = GetParam();
  const std::vector<std::pair<double, std::vector<double>>> expected = {
      {1.0,
       {0.14261473876588054, -0.09507649251058703, 0.7130736938294027, -0.023769123127646757, 0.3803059700423481,
        -0.19015298502117406, 0.047538246255293515, 0.42784421629764163, 0.11884561563823379,
        -0.2852294775317611}},
      {0.5,
       {0.07130736938294027, -0.047538246255293515, 0.35653684691470133, -0.011884561563823379,
        0.19015298502117406, -0.09507649251058703, 0.023769123127646757, 0.21392210814882082,
        0.05942280781911689, -0.14261473876588054}},
      {100.0, {0.3, -0.2, 1.5, -0.05, 0.8, -0.4, 0.1, 0.9, 0.25, -0.6}},  // below max_norm: unchanged
  };
  std::vector<double> grad = kGrads[0];
  grad.insert(grad.end(), kGrads[1].begin(), kGrads[1].end());
  std::mt19937_64 rng(optim_test::fresh_seed());
  std::vector<double> param = Tensor::from_values({10}, optim_test::random_normal(rng, 10), dtype).to_doubles();
  for (const auto& [max_norm, clipped] : expected) {
    SCOPED_TRACE(fmt::format("max_norm {}", max_norm));
    OptimizerConfig c = config("sgd", 1.0);
    c.clip_grad_norm = max_norm;
    UpdateGraph g(c, 10, dtype, backend);
    Tensor next = g.step(optim::initial_state(c, Tensor::from_values({10}, param, dtype)), grad,
                         optim::hyper_values(c, 1.0, 1, dtype));
    std::vector<double> got = row0(next), applied(10);
    for (int i = 0; i < 10; ++i) applied[i] = param[i] - got[i];
    EXPECT_TRUE(all_close(applied, clipped, dtype == DType::f64 ? 1e-12 : 1e-6));
  }
}

INSTANTIATE_TEST_SUITE_P(Optim, TorchValues,
                         ::testing::Combine(::testing::Values("cpu", "ref"), ::testing::Values(DType::f32, DType::f64)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::string(dtype_name(std::get<1>(info.param)));
                         });

}  // namespace
}  // namespace gpuml
