// The public C++ API (include/gpuml/gpuml.h) beyond the examples' good path: errors come out as
// gpuml::api::Error carrying the engine's message, and a regression task trains and reports its
// metric through it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gpuml/gpuml.h"

namespace gpuml::api {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not an api::Error: ") + e.what();
  }
  return "(no error)";
}

const char* kLinear = R"({"input_shape": [3], "layers": [{"type": "Linear", "in_features": 3, "out_features": 1}]})";

TEST(Api, ErrorsAreApiErrorsWithTheEnginesMessage) {
  EXPECT_NE(error_of([] { Model::from_json("{\"input_shape\": [3], \"layers\": ["); }).find("line"), std::string::npos);
  EXPECT_NE(error_of([] { Model::preset("resnet"); }).find("resnet"), std::string::npos);
  std::vector<float> x(12, 0.f);
  std::vector<int64_t> y3 = {0, 1, 0};
  Settings s;
  s.device = "cpu";
  s.threads = 1;
  std::string rows = error_of([&] {
    Trainer(s, Model::from_json(kLinear), Array::copy_of(x.data(), {4, 3}), Array::copy_of(y3.data(), {3}));
  });
  EXPECT_NE(rows.find("do not match"), std::string::npos) << rows;
  s.task = "clasification";
  std::vector<int64_t> y4 = {0, 1, 0, 1};
  std::string task = error_of([&] {
    Trainer(s, Model::from_json(kLinear), Array::copy_of(x.data(), {4, 3}), Array::copy_of(y4.data(), {4}));
  });
  EXPECT_NE(task.find("did you mean 'classification'"), std::string::npos) << task;
}

TEST(Api, RegressionTrainsAndReportsRmse) {
  std::mt19937_64 rng(9);
  std::normal_distribution<float> d(0.f, 1.f);
  const int64_t n = 256;
  std::vector<float> x(n * 3), y(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 3; ++j) x[i * 3 + j] = d(rng);
    y[i] = x[i * 3] - 2 * x[i * 3 + 1] + 0.5f * x[i * 3 + 2] + 1.f;
  }
  Settings s;
  s.device = "cpu";
  s.threads = 1;
  s.epochs = 25;
  s.batch_size = 32;
  s.lr = 0.05;
  Trainer t(s, Model::from_json(kLinear), Array::copy_of(x.data(), {n, 3}), Array::copy_of(y.data(), {n}));
  FitReport r = t.fit();
  EXPECT_EQ(r.task, "regression");
  EXPECT_EQ(r.metric_name, "rmse");
  EXPECT_LT(r.eval_metric, 0.1) << "an exactly linear target";
  Evaluation e = t.evaluate(Array::copy_of(x.data(), {n, 3}), Array::copy_of(y.data(), {n}));
  EXPECT_EQ(e.metric_name, "rmse");
  EXPECT_NEAR(e.metric, std::sqrt(e.loss), 1e-9);
  Array p = t.predict(Array::copy_of(x.data(), {2, 3}));
  EXPECT_EQ(p.shape(), (std::vector<int64_t>{2, 1}));
  EXPECT_NEAR(p.to_float()[0], y[0], 0.3);
}

}  // namespace
}  // namespace gpuml::api
