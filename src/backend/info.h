// The report `gpuml info` prints: version, build, CPU and its features, OpenMP threads, the
// backends registered (with how many ops each supports) and the devices found. Built as data
// first so that tests can check fields without parsing text.
//
//   SystemReport report = collect_system_report();
//   std::cout << render_system_report(report);
#pragma once

#include <string>
#include <vector>

#include "core/system_info.h"

namespace gpuml {

struct BackendSummary {
  std::string name;
  std::string device;       // "cpu", "cuda:0"
  std::string description;  // Backend::description()
  int ops_supported = 0;    // ops with a kernel for at least one dtype
};

struct DeviceSummary {
  std::string name;    // "cpu", "cuda"
  std::string detail;  // model and cores, or why there is none
};

struct SystemReport {
  std::string version;       // GPUML_VERSION
  std::string build_type;    // Release, Debug, ...
  std::string compiler;      // "GCC 12.2.0"
  std::string cxx_standard;  // "C++20"
  std::string cuda_plugin;   // "loaded from PATH" or "not used: REASON" (BackendRegistry::cuda_status)
  std::string processes;     // who this process is among a launcher's (backend/process_env.h)
  std::string collectives;   // the communicator engines this build can open
  std::string libraries;     // "oneDNN 2.6.3, fmt 9.1.0"
  std::string cpu_model;
  int logical_cpus = 1;
  CpuFeatures cpu_features;
  int openmp_threads = 1;
  int ops_in_table = 0;
  std::vector<BackendSummary> backends;
  std::vector<DeviceSummary> devices;
};

SystemReport collect_system_report();
std::string render_system_report(const SystemReport& report);

// One line per op in the table with the dtypes each backend supports, for `gpuml info --ops`.
std::string render_op_support();

}  // namespace gpuml
