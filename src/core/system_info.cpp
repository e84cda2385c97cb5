#include "core/system_info.h"

#include <omp.h>

#include <fstream>
#include <sstream>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define GPUML_X86 1
#endif

namespace gpuml {

#ifdef GPUML_X86
namespace {
struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return {};
  return r;
}

bool bit(unsigned reg, int index) {
  return (reg >> index) & 1u;
}

// XCR0 says which register states the OS saves on a context switch; without that, using the
// registers is unsafe even when cpuid lists the instructions.
unsigned long long read_xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
}  // namespace
#endif

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#ifdef GPUML_X86
  CpuidRegs leaf1 = cpuid(1, 0);
  bool osxsave = bit(leaf1.ecx, 27);
  if (!osxsave) return f;
  unsigned long long xcr0 = read_xcr0();
  bool os_avx = (xcr0 & 0x6) == 0x6;                 // SSE + AVX state
  bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM state
  bool os_amx = (xcr0 & 0x60000) == 0x60000;         // XTILECFG + XTILEDATA
  CpuidRegs leaf7 = cpuid(7, 0);
  CpuidRegs leaf7_1 = leaf7.eax >= 1 ? cpuid(7, 1) : CpuidRegs{};
  f.fma = os_avx && bit(leaf1.ecx, 12);
  f.avx2 = os_avx && bit(leaf7.ebx, 5);
  f.avx512f = os_avx512 && bit(leaf7.ebx, 16);
  f.avx512_core = f.avx512f && bit(leaf7.ebx, 17) && bit(leaf7.ebx, 30) && bit(leaf7.ebx, 31);  // dq, bw, vl
  f.avx512_vnni = os_avx512 && bit(leaf7.ecx, 11);
  f.avx512_bf16 = os_avx512 && bit(leaf7_1.eax, 5);
  f.amx_tile = os_amx && bit(leaf7.edx, 24);
  f.amx_bf16 = os_amx && bit(leaf7.edx, 22);
#endif
  return f;
}

std::string cpu_features_str(const CpuFeatures& f) {
  std::string out;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(f.fma, "fma");
  add(f.avx2, "avx2");
  add(f.avx512f, "avx512f");
  add(f.avx512_core, "avx512_core");
  add(f.avx512_vnni, "avx512_vnni");
  add(f.avx512_bf16, "avx512_bf16");
  add(f.amx_tile, "amx_tile");
  add(f.amx_bf16, "amx_bf16");
  return out.empty() ? "none" : out;
}

std::string parse_cpu_model_name(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t begin = line.find_first_not_of(" \t", colon + 1);
    if (begin == std::string::npos) continue;
    size_t end = line.find_last_not_of(" \t\r");
    return line.substr(begin, end - begin + 1);
  }
  return "unknown CPU";
}

std::string cpu_model_name() {
  std::ifstream file("/proc/cpuinfo");
  if (!file) return "unknown CPU";
  std::stringstream text;
  text << file.rdbuf();
  return parse_cpu_model_name(text.str());
}

int logical_cpu_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int openmp_max_threads() {
  return omp_get_max_threads();
}

}  // namespace gpuml
