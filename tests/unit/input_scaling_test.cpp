// The one input-scaling rule (train/task.h, Task::input_normalization) seen through the public API:
// uint8 images and the same images as floats in [0, 1] reach the model as the same values, whether
// they are trained on, evaluated during a run, evaluated or predicted after it by the Trainer, or
// predicted by a Predictor loaded from its checkpoint; token ids are never scaled. Before the rule,
// the Trainer scaled whatever it was given by the training set's dtype (uint8 training images: a
// float validation set divided by 255 once more; float training data: uint8 inputs to predict not
// scaled at all) while the Predictor scaled by the input's dtype.
#include <gtest/gtest.h>

#include <random>

#include "gpuml/gpuml.h"
#include "io_temp_dir.h"

namespace gpuml::api {
namespace {

constexpr int64_t kRows = 64;
constexpr int64_t kPixels = 16;  // (1, 4, 4)
const char* kImageModel = R"({"input_shape": [1, 4, 4], "layers": [{"type": "Flatten"},
  {"type": "Linear", "in_features": 16, "out_features": 3}]})";

struct Images {
  std::vector<uint8_t> bytes;   // (N, 1, 4, 4) uint8
  std::vector<float> scaled;    // the same as float32 in [0, 1], computed as the rule computes it
  std::vector<int64_t> labels;  // (N,) class ids
  Array bytes_array(int64_t rows = kRows) const { return Array::copy_of(bytes.data(), {rows, 1, 4, 4}); }
  Array scaled_array(int64_t rows = kRows) const { return Array::copy_of(scaled.data(), {rows, 1, 4, 4}); }
  Array label_array() const { return Array::copy_of(labels.data(), {kRows}); }
};

Images make_images() {
  std::mt19937_64 rng(23);
  std::uniform_int_distribution<int> pixel(0, 255), label(0, 2);
  Images im;
  for (int64_t i = 0; i < kRows * kPixels; ++i) {
    im.bytes.push_back(static_cast<uint8_t>(pixel(rng)));
    im.scaled.push_back(static_cast<float>(static_cast<double>(im.bytes.back()) * (1.0 / 255.0)));
  }
  for (int64_t i = 0; i < kRows; ++i) im.labels.push_back(label(rng));
  return im;
}

Settings small_run() {
  Settings s;
  s.device = "cpu";
  s.threads = 1;
  s.epochs = 2;
  s.batch_size = 16;
  s.lr = 0.05;
  s.val_split = 0;
  s.seed = 5;
  return s;
}

void expect_same(const Array& a, const Array& b, const char* what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(a.to_float(), b.to_float()) << what;
}

TEST(InputScaling, TrainingOnImagesAsBytesOrAsFloatsGivesTheSameRun) {
  Images im = make_images();
  Trainer bytes(small_run(), Model::from_json(kImageModel), im.bytes_array(), im.label_array());
  Trainer floats(small_run(), Model::from_json(kImageModel), im.scaled_array(), im.label_array());
  EXPECT_EQ(bytes.fit().train_loss, floats.fit().train_loss);
  expect_same(bytes.predict(im.bytes_array(8)), floats.predict(im.scaled_array(8)), "the two runs' predictions");
}

// Whatever the training data's dtype, evaluate and predict scale by the input's own dtype.
TEST(InputScaling, PredictAndEvaluateScaleByTheInputsDtypeNotTheTrainingSets) {
  Images im = make_images();
  for (bool trained_on_bytes : {true, false}) {
    SCOPED_TRACE(trained_on_bytes ? "trained on uint8" : "trained on float32");
    Trainer t(small_run(), Model::from_json(kImageModel), trained_on_bytes ? im.bytes_array() : im.scaled_array(),
              im.label_array());
    t.fit();
    const Array from_bytes = t.predict(im.bytes_array(8));
    expect_same(from_bytes, t.predict(im.scaled_array(8)), "Trainer::predict, uint8 against float32");
    Evaluation e8 = t.evaluate(im.bytes_array(), im.label_array());
    Evaluation ef = t.evaluate(im.scaled_array(), im.label_array());
    EXPECT_EQ(e8.loss, ef.loss);
    EXPECT_EQ(e8.metric, ef.metric);

    // The checkpoint's Predictor (what gpuml.load gives Python) agrees with the Trainer.
    testing::TempDir dir;
    const std::string checkpoint = (dir.path() / "run.safetensors").string();
    t.save(checkpoint);
    Predictor loaded = Predictor::load(checkpoint, "cpu");
    expect_same(loaded.predict(im.bytes_array(8)), from_bytes, "Predictor against Trainer, uint8");
    expect_same(loaded.predict(im.scaled_array(8)), from_bytes, "Predictor against Trainer, float32");
  }
}

// A run's evaluation arrays are scaled by their own dtype: float32 validation images beside
// uint8 training images are used as given, not divided by 255 again.
TEST(InputScaling, EvaluationArraysOfAnotherDtypeThanTrainingAreScaledByTheirOwn) {
  Images im = make_images();
  Trainer same(small_run(), Model::from_json(kImageModel), im.bytes_array(), im.label_array(), im.bytes_array(),
               im.label_array());
  Trainer mixed(small_run(), Model::from_json(kImageModel), im.bytes_array(), im.label_array(), im.scaled_array(),
                im.label_array());
  FitReport a = same.fit(), b = mixed.fit();
  EXPECT_EQ(a.eval_loss, b.eval_loss);
  EXPECT_EQ(a.eval_metric, b.eval_metric);
  Trainer floats(small_run(), Model::from_json(kImageModel), im.scaled_array(), im.label_array(), im.bytes_array(),
                 im.label_array());
  EXPECT_EQ(floats.fit().eval_loss, a.eval_loss) << "float training images, uint8 validation images";
}

// Token ids index an embedding: a language model never scales them, uint8 or not.
TEST(InputScaling, LanguageModelTokenIdsAreNeverScaled) {
  const int64_t n = 32, t = 8, vocab = 12;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  std::vector<int64_t> ids, next;
  std::vector<uint8_t> ids_u8;
  for (int64_t i = 0; i < n * t; ++i) {
    ids.push_back(token(rng));
    ids_u8.push_back(static_cast<uint8_t>(ids.back()));
    next.push_back((ids.back() + 1) % vocab);
  }
  const char* bigram = R"({"input_shape": [8], "layers": [
    {"type": "Embedding", "num_embeddings": 12, "embedding_dim": 8},
    {"type": "Linear", "in_features": 8, "out_features": 12}]})";
  Settings s = small_run();
  s.task = "language-model";
  Trainer trainer(s, Model::from_json(bigram), Array::copy_of(ids.data(), {n, t}), Array::copy_of(next.data(), {n, t}));
  EXPECT_EQ(trainer.task(), "language-model");
  trainer.fit();
  const Array want = trainer.predict(Array::copy_of(ids.data(), {4, t}));
  expect_same(trainer.predict(Array::copy_of(ids_u8.data(), {4, t})), want, "Trainer, uint8 token ids");
  testing::TempDir dir;
  const std::string checkpoint = (dir.path() / "lm.safetensors").string();
  trainer.save(checkpoint);
  expect_same(Predictor::load(checkpoint, "cpu").predict(Array::copy_of(ids_u8.data(), {4, t})), want,
              "Predictor, uint8 token ids");
}

}  // namespace
}  // namespace gpuml::api
