#include "backend/info.h"

#include <fmt/format.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "backend/plugin_loader.h"
#include "backend/process_env.h"
#include "core/error.h"
#include "core/dtype.h"
#include "ops/op_table.h"

namespace gpuml {

namespace {
std::string compiler_name() {
#if defined(__clang__)
  return fmt::format("Clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
  return fmt::format("GCC {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

std::string cxx_standard_name() {
  // __cplusplus is YYYYMM of the standard; 202002 is C++20, anything later is newer.
  if (__cplusplus > 202002L) return "C++23 or later";
  if (__cplusplus >= 202002L) return "C++20";
  return fmt::format("C++ ({})", __cplusplus);
}

std::string library_versions() {
  const dnnl_version_t* dnnl = dnnl_version();
  return fmt::format("oneDNN {}.{}.{}, fmt {}.{}.{}", dnnl->major, dnnl->minor, dnnl->patch,
                     FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
}

int count_supported_ops(const Backend& backend) {
  int n = 0;
  for (OpId op : all_ops())
    if (!backend.supported_dtypes(op).empty()) ++n;
  return n;
}

std::string yes_no(bool value) {
  return value ? "yes" : "no";
}
}  // namespace

SystemReport collect_system_report() {
  SystemReport r;
  r.version = GPUML_VERSION;
  r.build_type = GPUML_BUILD_TYPE;
  r.compiler = compiler_name();
  r.cxx_standard = cxx_standard_name();
  r.cuda_plugin = backend_registry().cuda_status();
  r.libraries = library_versions();
  r.cpu_model = cpu_model_name();
  r.logical_cpus = logical_cpu_count();
  r.cpu_features = detect_cpu_features();
  r.openmp_threads = openmp_max_threads();
  std::string would_use = "single (one process)";
  try {
    const ProcessPlacement placement = detect_process_placement(environment_of_this_process());
    r.processes = describe_placement(placement);
    const CommunicatorChoice choice = choose_communicator(placement);
    if (choice.engine != "single") {
      const std::string file = find_plugin_file(choice.plugin_file);
      would_use = fmt::format("{} ({})", choice.engine, file.empty() ? choice.plugin_file + " not found" : file);
    }
  } catch (const Error& e) {
    r.processes = "not understood: " + e.message();
    would_use = "none (the launcher variables above are not understood)";
  }
  // Found, not opened: opening MPI initialises it, and Gloo meets the other ranks, which only a
  // launched job should do.
  const std::string mpi = find_plugin_file("libgpuml_mpi.so"), gloo = find_plugin_file("libgpuml_gloo.so");
  r.collectives = fmt::format("this process would use {}; MPI: {}; Gloo: {}; NCCL: in the CUDA plugin, for the "
                              "gradients of GPU ranks (GPUML_COMM=auto|nccl|host; compiled, not yet run on a GPU)",
                              would_use,
                              mpi.empty() ? "plugin not built (needs libopenmpi-dev)" : mpi,
                              gloo.empty() ? "plugin not built (needs libgloo-dev)" : gloo);
  r.ops_in_table = kNumOps;
  for (Backend* b : backend_registry().all())
    r.backends.push_back(
        {std::string(b->name()), b->device().str(), b->description(), count_supported_ops(*b)});
  r.devices.push_back({"cpu", fmt::format("{}, {} logical cores", r.cpu_model, r.logical_cpus)});
  // The CUDA backend is a plugin loaded at run time: its backends describe their GPUs, or the
  // registry says why there are none.
  bool any_gpu = false;
  for (Backend* b : backend_registry().all())
    if (!b->device().is_host()) {
      r.devices.push_back({b->device().str(), b->description()});
      any_gpu = true;
    }
  if (!any_gpu) r.devices.push_back({"cuda", "no CUDA backend: " + r.cuda_plugin});
  return r;
}

std::string render_system_report(const SystemReport& r) {
  std::string out;
  auto line = [&](std::string_view key, std::string_view value) {
    out += fmt::format("{:<16}{}\n", key, value);
  };
  out += fmt::format("gpuml {}\n\n", r.version);
  line("build", fmt::format("{}, {}, {}", r.build_type, r.compiler, r.cxx_standard));
  line("CUDA:", r.cuda_plugin);
  line("libraries", r.libraries);
  line("CPU", fmt::format("{} ({} logical cores)", r.cpu_model, r.logical_cpus));
  const CpuFeatures& f = r.cpu_features;
  line("CPU features",
       fmt::format("AVX2 {}, AVX-512F {}, AVX-512 BF16 {}, AMX {}", yes_no(f.avx2),
                   yes_no(f.avx512f), yes_no(f.avx512_bf16), yes_no(f.amx_tile && f.amx_bf16)));
  line("", fmt::format("({})", cpu_features_str(f)));
  line("OpenMP threads", fmt::format("{}", r.openmp_threads));
  line("processes", r.processes);
  line("collectives", r.collectives);
  out += "\nbackends (in order of preference)\n";
  for (const BackendSummary& b : r.backends)
    out += fmt::format("  {:<6} device {:<6} {:>3}/{} ops  {}\n", b.name, b.device, b.ops_supported,
                       r.ops_in_table, b.description);
  out += "\ndevices\n";
  for (const DeviceSummary& d : r.devices) out += fmt::format("  {:<6} {}\n", d.name, d.detail);
  return out;
}

std::string render_op_support() {
  std::vector<Backend*> backends = backend_registry().all();
  // Trailing spaces from the last column help nobody.
  auto end_line = [](std::string& text) {
    while (!text.empty() && text.back() == ' ') text.pop_back();
    text += '\n';
  };
  std::string out = fmt::format("{:<24}{:<10}", "op", "kind");
  for (const Backend* b : backends) out += fmt::format("{:<36}", b->name());
  end_line(out);
  for (OpId op : all_ops()) {
    out += fmt::format("{:<24}{:<10}", op_name(op), op_kind_name(op_info(op).kind));
    for (const Backend* b : backends) {
      std::vector<std::string> names;
      for (DType d : b->supported_dtypes(op)) names.emplace_back(dtype_name(d));
      out += fmt::format(
          "{:<36}", names.empty() ? std::string("-") : fmt::format("{}", fmt::join(names, ",")));
    }
    end_line(out);
  }
  return out;
}

}  // namespace gpuml
