// Shared pieces of gpuml_bench: the shapes of the reference models (torch_fmnist.py, batch 128),
// random inputs, and the GFLOP/s counter every benchmark reports.
//
//   for (const GemmShape& s : gemm_shapes()) register_gemm(s);
//   set_gflops(state, s.flops());
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace gpuml::bench {

// C (M, N) = op(A) op(B) with op(A) (M, K) and op(B) (K, N). Row-major, as gpuml's matmul:
// A is stored (M, K), or (K, M) when trans_a; B is stored (K, N), or (N, K) when trans_b.
struct GemmShape {
  std::string name;
  int64_t m, n, k;
  bool trans_a, trans_b;
  double flops() const { return 2.0 * m * n * k; }
};

// A 2-d convolution x (N, C, H, W) * w (O, C, kH, kW), square stride and padding, no bias.
struct ConvShape {
  std::string name;
  int64_t n, c, h, w, o, kh, kw, stride, pad;
  int64_t oh() const { return (h + 2 * pad - kh) / stride + 1; }
  int64_t ow() const { return (w + 2 * pad - kw) / stride + 1; }
  double flops() const { return 2.0 * n * o * oh() * ow() * c * kh * kw; }
};

// The GEMMs of one training step of the MLP and the CNN's fully connected layers at batch 128
// (a Linear y = x W^T runs forward as x W^T, backward as dx = dy W and dW = dy^T x), plus a
// large square GEMM where every library should be near peak.
inline std::vector<GemmShape> gemm_shapes() {
  return {
      {"mlp_fc1_fwd", 128, 256, 784, false, true},   // x (128,784) W1^T, W1 (256,784)
      {"mlp_fc2_fwd", 128, 128, 256, false, true},   // h1 (128,256) W2^T, W2 (128,256)
      {"mlp_fc3_fwd", 128, 10, 128, false, true},    // h2 (128,128) W3^T, W3 (10,128)
      {"mlp_fc1_dW", 256, 784, 128, true, false},    // dy1^T x: dy1 (128,256), x (128,784)
      {"mlp_fc2_dx", 128, 256, 128, false, false},   // dy2 (128,128) W2 (128,256)
      {"mlp_fc2_dW", 128, 256, 128, true, false},    // dy2^T h1
      {"mlp_fc3_dx", 128, 128, 10, false, false},    // dy3 (128,10) W3 (10,128)
      {"mlp_fc3_dW", 10, 128, 128, true, false},     // dy3^T h2
      {"cnn_fc1_fwd", 128, 128, 3136, false, true},  // flat (128,3136) W^T, W (128,3136)
      {"cnn_fc1_dx", 128, 3136, 128, false, false},  // dy (128,128) W (128,3136)
      {"cnn_fc1_dW", 128, 3136, 128, true, false},   // dy^T flat
      {"square_1024", 1024, 1024, 1024, false, false},
  };
}

// The CNN's convolutions at batch 128 (3x3, padding 1, stride 1).
inline std::vector<ConvShape> conv_shapes() {
  return {
      {"cnn_conv1", 128, 1, 28, 28, 32, 3, 3, 1, 1},   // x (128,1,28,28) w (32,1,3,3)
      {"cnn_conv2", 128, 32, 14, 14, 64, 3, 3, 1, 1},  // x (128,32,14,14) w (64,32,3,3)
  };
}

// Fresh normal(0, 1) values, never zeros, so that no library can take a shortcut.
inline std::vector<float> random_floats(size_t count, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(gen);
  return v;
}

// Reports GFLOP/s as a rate (work per wall-clock second; benchmarks use real time because the
// libraries run on several threads).
inline void set_gflops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

void register_matmul_benchmarks();
void register_conv_benchmarks();
void register_fusion_benchmarks();
void register_attention_benchmarks();

}  // namespace gpuml::bench
