// A/B for issue 19's item 6: would layer_norm keeping (mean, rstd) for its backward, as llm.c's
// layernorm_forward does, make the CPU backward faster? A: the row loop of cpu_norm_loss.cpp's
// layer_norm_backward_kernel as it is (f32, stats() recomputes mean and rstd from x); B: the same
// loop reading (mean, rstd) that the forward would keep. Interleaved A, B, 30 times; best of each.
// A standalone program, not part of gpuml_bench (bench/*.cpp only), built with gpuml's flags:
//
//   g++ -O3 -fopenmp -std=c++20 bench/ab/layer_norm_kept_stats.cpp -o /tmp/ln_ab
//   OMP_NUM_THREADS=1 /tmp/ln_ab 8192 768     # rows, row length
//
// Results and the decision: BENCHMARKS.md, "layer_norm keeping (mean, rstd)".
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>
#include <omp.h>

static void stats(const float* x, long n, double eps, double& mean, double& rstd) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (long i = 0; i < n; ++i) sum += (double)x[i];
  mean = sum / (double)n;
  double sq = 0.0;
#pragma omp simd reduction(+ : sq)
  for (long i = 0; i < n; ++i) { double d = (double)x[i] - mean; sq += d * d; }
  rstd = 1.0 / std::sqrt(sq / (double)n + eps);
}

template <bool kept>
void backward(const float* px, const float* pw, const float* pdy, float* pdx, const float* pm, const float* pr,
              long rows, long d) {
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) {
    const float *xr = px + r * d, *dyr = pdy + r * d;
    float* dxr = pdx + r * d;
    double mean, rstd;
    if (kept) { mean = pm[r]; rstd = pr[r]; } else stats(xr, d, 1e-5, mean, rstd);
    double g_sum = 0.0, gx_sum = 0.0;
    for (long j = 0; j < d; ++j) {
      double g = (double)dyr[j] * (double)pw[j];
      g_sum += g;
      gx_sum += g * ((double)xr[j] - mean) * rstd;
    }
    const double g_mean = g_sum / (double)d, gx_mean = gx_sum / (double)d;
    for (long j = 0; j < d; ++j) {
      double g = (double)dyr[j] * (double)pw[j];
      double xhat = ((double)xr[j] - mean) * rstd;
      dxr[j] = (float)(rstd * (g - g_mean - xhat * gx_mean));
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s rows row_length\n", argv[0]);
    return 2;
  }
  long rows = atol(argv[1]), d = atol(argv[2]);
  int reps = 30;
  std::mt19937 rng(1);
  std::normal_distribution<float> n;
  std::vector<float> x(rows * d), w(d), dy(rows * d), dx(rows * d), m(rows), r(rows);
  for (auto& v : x) v = n(rng);
  for (auto& v : w) v = n(rng);
  for (auto& v : dy) v = n(rng);
  for (long i = 0; i < rows; ++i) { double a, b; stats(&x[i * d], d, 1e-5, a, b); m[i] = a; r[i] = b; }
  double best[2] = {1e9, 1e9};
  for (int rep = 0; rep < reps; ++rep)  // interleaved A, B
    for (int k = 0; k < 2; ++k) {
      auto t0 = std::chrono::steady_clock::now();
      if (k == 0) backward<false>(x.data(), w.data(), dy.data(), dx.data(), m.data(), r.data(), rows, d);
      else backward<true>(x.data(), w.data(), dy.data(), dx.data(), m.data(), r.data(), rows, d);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s < best[k]) best[k] = s;
    }
  printf("rows %ld d %ld threads %d: recompute %.3f ms, kept %.3f ms, kept/recompute %.3f\n", rows, d,
         omp_get_max_threads(), best[0] * 1e3, best[1] * 1e3, best[1] / best[0]);
}
