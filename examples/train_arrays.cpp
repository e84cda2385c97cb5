// Trains an MLP on arrays in memory and saves a checkpoint.
//   train_arrays model.safetensors
// The data: 2,000 points of 20 features in 4 classes (which group of 5 features has the largest
// sum), made here; 500 more to evaluate on.
#include <gpuml/gpuml.h>

#include <cstdio>
#include <random>
#include <vector>

namespace ga = gpuml::api;

static void make_points(int64_t n, unsigned seed, std::vector<float>& x, std::vector<int64_t>& y) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  x.resize(n * 20), y.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    float best = -1e30f;
    for (int64_t g = 0; g < 4; ++g) {
      float sum = 0;
      for (int64_t f = 0; f < 5; ++f) sum += x[i * 20 + g * 5 + f] = normal(rng);
      if (sum > best) best = sum, y[i] = g;
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: train_arrays OUT.safetensors\n");
    return 2;
  }
  std::vector<float> x, test_x;
  std::vector<int64_t> y, test_y;
  make_points(2000, 1, x, y);
  make_points(500, 2, test_x, test_y);
  try {
    ga::Model model = ga::Model::from_json(R"({"input_shape": [20], "layers": [
        {"type": "Linear", "in_features": 20, "out_features": 64}, {"type": "ReLU"},
        {"type": "Linear", "in_features": 64, "out_features": 4}]})");
    ga::Settings s;
    s.epochs = 8;
    s.batch_size = 64;
    s.lr = 3e-3;
    ga::Trainer trainer(s, model, ga::Array::copy_of(x.data(), {2000, 20}), ga::Array::copy_of(y.data(), {2000}),
                        ga::Array::copy_of(test_x.data(), {500, 20}), ga::Array::copy_of(test_y.data(), {500}));
    trainer.on_epoch_end([](const ga::EpochReport& e) {
      std::printf("epoch %lld: train loss %.4f, test accuracy %.4f\n", static_cast<long long>(e.epoch), e.train_loss,
                  e.eval_metric);
    });
    ga::FitReport r = trainer.fit();
    std::printf("trained %lld epochs on %s: test accuracy %.4f\n", static_cast<long long>(r.epochs), r.device.c_str(),
                r.eval_metric);
    trainer.save(argv[1]);
    std::printf("saved %s\n", argv[1]);
    return r.eval_metric > 0.8 ? 0 : 1;  // 4 separable groups: an MLP learns them
  } catch (const ga::Error& e) {
    std::fprintf(stderr, "train_arrays: %s\n", e.what());
    return 1;
  }
}
