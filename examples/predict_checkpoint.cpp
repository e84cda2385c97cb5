// Loads a checkpoint (a run directory, a .safetensors checkpoint or an .onnx model) and prints
// the predicted class of a few inputs of the right shape (all zeros, then all ones).
//   predict_checkpoint model.safetensors
#include <gpuml/gpuml.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace ga = gpuml::api;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: predict_checkpoint CHECKPOINT\n");
    return 2;
  }
  try {
    ga::Predictor predictor = ga::Predictor::load(argv[1], "cpu");
    std::vector<int64_t> shape = predictor.model().input_shape();
    int64_t per_sample = 1;
    for (int64_t d : shape) per_sample *= d;
    std::vector<float> x(2 * per_sample, 0.0f);
    std::fill(x.begin() + per_sample, x.end(), 1.0f);
    shape.insert(shape.begin(), 2);
    ga::Array probs = predictor.predict(ga::Array::copy_of(x.data(), shape));
    std::vector<float> p = probs.to_float();
    const int64_t classes = probs.shape()[1];
    for (int64_t i = 0; i < 2; ++i) {
      const float* row = p.data() + i * classes;
      const int64_t label = std::max_element(row, row + classes) - row;
      std::printf("input %lld: class %lld (p = %.3f)\n", static_cast<long long>(i), static_cast<long long>(label),
                  row[label]);
    }
    return 0;
  } catch (const ga::Error& e) {
    std::fprintf(stderr, "predict_checkpoint: %s\n", e.what());
    return 1;
  }
}
