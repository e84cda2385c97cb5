// Matmul at the reference models' GEMM shapes: gpuml's cpu backend (eager run_op, and the kernel
// into a preallocated output), oneDNN's matmul primitive (created once) and OpenBLAS cblas_sgemm.
#include <cblas.h>

#include <algorithm>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include "bench_common.h"
#include "gpuml_op_bench.h"

namespace gpuml::bench {

namespace {

void bench_gpuml_matmul(benchmark::State& state, const GemmShape& s, GpumlMode mode) {
  Tensor a =
      random_host_tensor(s.trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k}, 1);  // (M, K) or (K, M)
  Tensor b =
      random_host_tensor(s.trans_b ? Shape{s.n, s.k} : Shape{s.k, s.n}, 2);  // (K, N) or (N, K)
  Attrs attrs;
  attrs.trans_a = s.trans_a;
  attrs.trans_b = s.trans_b;
  bench_gpuml_op(state, OpId::matmul, {a, b}, attrs, s.flops(), mode);
}

void bench_onednn_matmul(benchmark::State& state, const GemmShape& s) {
  using dnnl::memory;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  // Plain row-major buffers; a transposed operand is the same buffer with swapped strides.
  memory::desc a_md({s.m, s.k}, memory::data_type::f32,
                    s.trans_a ? memory::dims{1, s.m} : memory::dims{s.k, 1});
  memory::desc b_md({s.k, s.n}, memory::data_type::f32,
                    s.trans_b ? memory::dims{1, s.k} : memory::dims{s.n, 1});
  memory::desc c_md({s.m, s.n}, memory::data_type::f32, memory::dims{s.n, 1});
  std::vector<float> a = random_floats(static_cast<size_t>(s.m * s.k), 1);
  std::vector<float> b = random_floats(static_cast<size_t>(s.k * s.n), 2);
  std::vector<float> c(static_cast<size_t>(s.m * s.n));
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), engine);
  dnnl::matmul matmul(pd);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, memory(a_md, engine, a.data())},
                                          {DNNL_ARG_WEIGHTS, memory(b_md, engine, b.data())},
                                          {DNNL_ARG_DST, memory(c_md, engine, c.data())}};
  matmul.execute(stream, args);
  stream.wait();
  for (auto _ : state) {
    matmul.execute(stream, args);
    stream.wait();
    benchmark::DoNotOptimize(c.data());
  }
  set_gflops(state, s.flops());
}

void bench_openblas_sgemm(benchmark::State& state, const GemmShape& s) {
  std::vector<float> a = random_floats(static_cast<size_t>(s.m * s.k), 1);
  std::vector<float> b = random_floats(static_cast<size_t>(s.k * s.n), 2);
  std::vector<float> c(static_cast<size_t>(s.m * s.n));
  auto sgemm = [&] {
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                s.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(s.m), static_cast<int>(s.n),
                static_cast<int>(s.k), 1.f, a.data(), static_cast<int>(s.trans_a ? s.m : s.k),
                b.data(), static_cast<int>(s.trans_b ? s.k : s.n), 0.f, c.data(),
                static_cast<int>(s.n));
  };
  sgemm();
  for (auto _ : state) {
    sgemm();
    benchmark::DoNotOptimize(c.data());
  }
  set_gflops(state, s.flops());
}

}  // namespace

void register_matmul_benchmarks() {
  for (const GemmShape& s : gemm_shapes()) {
    std::string prefix = "matmul/" + s.name + "/";
    benchmark::RegisterBenchmark((prefix + "gpuml").c_str(), bench_gpuml_matmul, s,
                                 GpumlMode::eager)
        ->UseRealTime();
    benchmark::RegisterBenchmark((prefix + "gpuml_kernel").c_str(), bench_gpuml_matmul, s,
                                 GpumlMode::kernel)
        ->UseRealTime();
    benchmark::RegisterBenchmark((prefix + "onednn").c_str(), bench_onednn_matmul, s)
        ->UseRealTime();
    benchmark::RegisterBenchmark((prefix + "openblas").c_str(), bench_openblas_sgemm, s)
        ->UseRealTime();
  }
}

}  // namespace gpuml::bench
