// gpuml_bench: gpuml's cpu backend side by side with oneDNN and OpenBLAS called directly, at the
// shapes of the reference models; planned mlp steps with and without the planner's fusion; the
// attention op against its matmul-softmax-matmul composite. bench/run_cpu_bench.sh runs it and
// prints the ratios.
#include <benchmark/benchmark.h>

#include "bench_common.h"

int main(int argc, char** argv) {
  gpuml::bench::register_matmul_benchmarks();
  gpuml::bench::register_conv_benchmarks();
  gpuml::bench::register_fusion_benchmarks();
  gpuml::bench::register_attention_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
