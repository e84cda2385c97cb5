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

// The pieces a host language binds (python/): arrays viewed in place, a step function that can
// stop the run after its step, error kinds.
TEST(Api, ViewOfReadsTheCallersElementsInPlaceAndHoldsTheOwner) {
  auto values = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  std::weak_ptr<std::vector<float>> watch = values;
  Array a = Array::view_of(values->data(), DType::f32, {2, 3}, values);
  EXPECT_EQ(a.data(), values->data());
  EXPECT_EQ(a.shape(), (std::vector<int64_t>{2, 3}));
  values.reset();
  EXPECT_FALSE(watch.expired()) << "the Array keeps its owner";
  EXPECT_EQ(a.to_float()[5], 6.f);
  a = Array();
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(a.data(), nullptr);
}

TEST(Api, StepFunctionsSeeEveryStepAndRequestStopEndsAfterTheCurrentOne) {
  const int64_t n = 64;
  std::vector<float> x(n * 3);
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 3; ++j) x[i * 3 + j] = static_cast<float>((i * 7 + j * 3) % 11) / 11.f;
    y[i] = i % 2;
  }
  const char* two_classes = R"({"input_shape": [3], "layers": [{"type": "Linear", "in_features": 3, "out_features": 2}]})";
  Settings s;
  s.device = "cpu";
  s.threads = 1;
  s.epochs = 3;
  s.batch_size = 16;
  s.val_split = 0;
  Trainer t(s, Model::from_json(two_classes), Array::view_of(x.data(), DType::f32, {n, 3}, nullptr),
            Array::view_of(y.data(), DType::i64, {n}, nullptr));
  EXPECT_EQ(t.task(), "classification");
  EXPECT_EQ(t.metric_name(), "accuracy");
  std::vector<StepReport> steps;
  int epochs = 0;
  t.on_step_end([&](const StepReport& r) {
    steps.push_back(r);
    if (r.step == 6) t.request_stop();
  });
  t.on_epoch_end([&](const EpochReport&) { ++epochs; });
  FitReport r = t.fit();
  EXPECT_TRUE(r.stopped);
  ASSERT_EQ(steps.size(), 6u) << "stops after the step that asked";
  EXPECT_EQ(steps[3].epoch, 1);
  EXPECT_EQ(steps[3].batch, 4);
  EXPECT_EQ(steps[4].epoch, 2);
  EXPECT_EQ(steps[4].batch, 1);
  EXPECT_EQ(steps[4].batches_per_epoch, 4);
  EXPECT_EQ(steps[4].rows, 16);
  EXPECT_TRUE(std::isfinite(steps[4].loss));
  EXPECT_EQ(epochs, 1);
}

TEST(Api, ErrorKindsSayWhatWentWrong) {
  auto kind_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.kind();
    }
    return Error::Kind::internal;
  };
  EXPECT_EQ(kind_of([] { Model::preset("resnet"); }), Error::Kind::invalid);
  EXPECT_EQ(kind_of([] { Predictor::load("/nonexistent/run.safetensors", "cpu"); }), Error::Kind::io);
}

TEST(Api, SummaryAndInfo) {
  EXPECT_NE(Model::preset("mlp").summary(32).find("(32, 10)"), std::string::npos) << Model::preset("mlp").summary(32);
  EXPECT_NE(info().find("cpu"), std::string::npos);
}

}  // namespace
}  // namespace gpuml::api
