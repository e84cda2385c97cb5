// What the host machine offers, detected at run time: CPU model, instruction-set features and
// thread counts. Used by `gpuml info` and by backends that pick kernels by CPU feature.
//
//   CpuFeatures f = detect_cpu_features();
//   if (f.avx512f) { ... }
//   fmt::print("{} ({} threads)\n", cpu_model_name(), openmp_max_threads());
#pragma once

#include <string>
#include <string_view>

namespace gpuml {

// Each flag is true only when the CPU has the feature AND the OS saves its registers
// (XCR0), so a true flag means the instructions can actually be used.
struct CpuFeatures {
  bool fma = false;
  bool avx2 = false;
  bool avx512f = false;
  bool avx512_core = false;  // avx512f with dq, bw and vl (every AVX-512 server CPU since Skylake)
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool amx_tile = false;
  bool amx_bf16 = false;
};

CpuFeatures detect_cpu_features();

// "avx2 avx512f ..." or "none": the true flags, in declaration order.
std::string cpu_features_str(const CpuFeatures& features);

// The first "model name" in /proc/cpuinfo, or "unknown CPU" where there is none.
std::string cpu_model_name();
// The parser behind cpu_model_name(), separate so that tests can feed it text.
std::string parse_cpu_model_name(std::string_view cpuinfo_text);

int logical_cpu_count();   // std::thread::hardware_concurrency, at least 1
int openmp_max_threads();  // omp_get_max_threads(): what a parallel region will use

}  // namespace gpuml
