// Weights exchange (interop/weights_file.h): NPZ written here reads back bit-exactly, loads into
// a model by name, and every mismatch (missing, extra, mis-shaped) is named.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/atomic_file.h"
#include "graph/planner.h"
#include "interop/weights_file.h"
#include "io_temp_dir.h"
#include "nn/model.h"
#include "train/model_runner.h"
#include "train/callbacks.h"

namespace gpuml {
namespace {

using testing::TempDir;

Tensor random_f32(const Shape& shape, std::mt19937_64& rng) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (double& x : v) x = std::uniform_real_distribution<double>(-2.0, 2.0)(rng);
  return Tensor::from_values(shape, v, DType::f32);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(OnnxWeights, NpzRoundTripIsBitExact) {
  std::mt19937_64 rng(std::random_device{}());
  TempDir dir;
  NamedTensors in = {{"0.weight", random_f32({7, 5}, rng)},
                     {"0.bias", random_f32({7}, rng)},
                     {"bn.num_batches_tracked", Tensor::from_values({}, {double(rng() % 1000)}, DType::i64)},
                     {"conv.weight", random_f32({3, 2, 3, 3}, rng)}};
  // A strided view is written by its logical values.
  in.emplace_back("t.weight", random_f32({4, 6}, rng).transpose(0, 1));
  interop::save_npz_weights(dir.path() / "w.npz", in);
  NamedTensors out = interop::load_weights_file(dir.path() / "w.npz");
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].first, in[i].first);
    EXPECT_EQ(out[i].second.shape(), in[i].second.shape());
    EXPECT_EQ(out[i].second.to_doubles(), in[i].second.to_doubles()) << in[i].first;
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"w.npz"});  // no temporary left behind
}

TEST(OnnxWeights, DuplicateNamesAreRejectedAndNoFileIsLeft) {
  std::mt19937_64 rng(std::random_device{}());
  TempDir dir;
  NamedTensors in = {{"a", random_f32({2}, rng)}, {"a", random_f32({2}, rng)}};
  EXPECT_THROW(interop::save_npz_weights(dir.path() / "w.npz", in), Error);
  EXPECT_TRUE(dir.list().empty());
}

TEST(OnnxWeights, ExportThenLoadGivesIdenticalModelWeights) {
  TempDir dir;
  nn::Model model = nn::Model::preset("cnn");
  uint64_t seed = std::random_device{}();
  PlanOptions plan = plan_options_for_device("cpu");
  ModelRunner source(model, optim::OptimizerConfig{}, plan, seed);
  interop::save_npz_weights(dir.path() / "w.npz", source.model_tensors());
  save_safetensors(dir.path() / "w.safetensors", source.model_tensors());
  for (const char* file : {"w.npz", "w.safetensors"}) {
    ModelRunner target(model, optim::OptimizerConfig{}, plan, seed + 1);
    NamedTensors loaded = interop::load_weights_file(dir.path() / file);
    interop::check_weights_fit(model.param_infos(), loaded);
    target.load(loaded, {});
    NamedTensors a = source.model_tensors(), b = target.model_tensors();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bytes(a[i].second, b[i].second)) << file << " " << a[i].first;
  }
}

std::string error_of(const std::vector<nn::ParamInfo>& infos, const NamedTensors& w) {
  try {
    interop::check_weights_fit(infos, w);
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

TEST(OnnxWeights, MismatchesAreNamed) {
  std::mt19937_64 rng(std::random_device{}());
  nn::Model model = nn::Model::preset("mlp");  // 1.weight (256, 784) ... 5.bias (10)
  std::map<std::string, Tensor> init = model.init_values(rng());
  NamedTensors good(init.begin(), init.end());
  EXPECT_EQ(error_of(model.param_infos(), good), "");

  NamedTensors missing = good;
  missing.erase(missing.begin());
  std::string e = error_of(model.param_infos(), missing);
  EXPECT_NE(e.find("missing [" + good.front().first + "]"), std::string::npos) << e;

  NamedTensors extra = good;
  extra.emplace_back("7.weight", random_f32({2, 2}, rng));
  e = error_of(model.param_infos(), extra);
  EXPECT_NE(e.find("unexpected [7.weight]"), std::string::npos) << e;

  NamedTensors wrong = good;
  for (auto& [name, t] : wrong)
    if (name == "5.bias") t = random_f32({11}, rng);
  e = error_of(model.param_infos(), wrong);
  EXPECT_NE(e.find("'5.bias' has shape (11,)"), std::string::npos) << e;
  EXPECT_NE(e.find("expects (10,)"), std::string::npos) << e;
}

TEST(OnnxWeights, UnknownExtensionAndCorruptFilesAreErrors) {
  TempDir dir;
  EXPECT_THROW(interop::load_weights_file(dir.path() / "w.pt"), Error);
  write_file_atomically(dir.path() / "bad.npz", std::string("PK\x03\x04garbage", 11));
  EXPECT_THROW(interop::load_weights_file(dir.path() / "bad.npz"), Error);
  EXPECT_THROW(interop::load_weights_file(dir.path() / "absent.safetensors"), Error);
}

}  // namespace
}  // namespace gpuml
