// `gpuml info`: the report as data, its rendering, and the binary's exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "backend/backend.h"
#include "backend/info.h"
#include "core/system_info.h"
#include "test_paths.h"

namespace gpuml {
namespace {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs the built gpuml binary (its path comes from CMake) with `args`.
CommandResult run_gpuml(const std::string& args) {
  // Built by appending: GCC 12 warns (-Wrestrict, a false positive) on "'" + std::string&&.
  std::string command = "'";
  command += testing::gpuml_cli_path();
  command += "' " + args + " 2>&1";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(SystemInfo, ParsesModelNameFromCpuinfoText) {
  std::string text =
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6348 CPU @ "
      "2.60GHz  \n"
      "processor\t: 1\nmodel name\t: second one\n";
  EXPECT_EQ(parse_cpu_model_name(text), "Intel(R) Xeon(R) Gold 6348 CPU @ 2.60GHz");
  EXPECT_EQ(parse_cpu_model_name("processor : 0\nflags : fpu\n"), "unknown CPU");
  EXPECT_EQ(parse_cpu_model_name("model name\t:\n"), "unknown CPU");
}

TEST(SystemInfo, FeatureStringListsOnlyTrueFlagsInOrder) {
  CpuFeatures f;
  EXPECT_EQ(cpu_features_str(f), "none");
  f.avx2 = true;
  f.avx512_bf16 = true;
  EXPECT_EQ(cpu_features_str(f), "avx2 avx512_bf16");
}

TEST(SystemInfo, DetectedFeaturesAreConsistent) {
  // Each wider feature implies the narrower one it builds on, on every real x86 CPU.
  CpuFeatures f = detect_cpu_features();
  EXPECT_TRUE(!f.avx512f || f.avx2);
  EXPECT_TRUE(!f.avx512_bf16 || f.avx512f);
  EXPECT_TRUE(!f.amx_bf16 || f.amx_tile);
  EXPECT_GE(logical_cpu_count(), 1);
  EXPECT_GE(openmp_max_threads(), 1);
  EXPECT_FALSE(cpu_model_name().empty());
}

TEST(InfoReport, CollectsEveryRegisteredBackend) {
  SystemReport report = collect_system_report();
  std::vector<Backend*> backends = backend_registry().all();
  ASSERT_EQ(report.backends.size(), backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    EXPECT_EQ(report.backends[i].name, backends[i]->name());
    EXPECT_EQ(report.backends[i].description, backends[i]->description());
    EXPECT_GE(report.backends[i].ops_supported, 0);
    EXPECT_LE(report.backends[i].ops_supported, report.ops_in_table);
  }
  EXPECT_EQ(report.version, GPUML_VERSION);
}

TEST(InfoReport, RenderedTextNamesBackendsFeaturesAndDevices) {
  SystemReport report = collect_system_report();
  std::string text = render_system_report(report);
  EXPECT_NE(text.find(std::string("gpuml ") + GPUML_VERSION), std::string::npos) << text;
  for (const BackendSummary& b : report.backends) {
    EXPECT_NE(text.find(b.name), std::string::npos) << text;
    EXPECT_NE(text.find(b.description), std::string::npos) << text;
  }
  for (const char* needle : {"AVX2", "AVX-512F", "AVX-512 BF16", "OpenMP threads",
                             "CUDA:", "C++20"})
    EXPECT_NE(text.find(needle), std::string::npos) << "missing '" << needle << "' in\n" << text;
  EXPECT_NE(text.find(report.cpu_model), std::string::npos) << text;
  EXPECT_NE(text.find(backend_registry().cuda_status()), std::string::npos) << text;
}

TEST(InfoReport, RendersFeatureValuesItWasGiven) {
  // A made-up report, so the test fails if rendering ignores the data.
  SystemReport report;
  report.version = "9.9.9";
  report.cpu_model = "Test CPU 3000";
  report.cpu_features.avx2 = true;
  report.openmp_threads = 7;
  report.ops_in_table = 10;
  report.backends.push_back({"fake", "cpu", "a fake backend", 3});
  std::string text = render_system_report(report);
  EXPECT_NE(text.find("AVX2 yes, AVX-512F no"), std::string::npos) << text;
  EXPECT_NE(text.find("Test CPU 3000"), std::string::npos) << text;
  EXPECT_NE(text.find("3/10 ops"), std::string::npos) << text;
  EXPECT_NE(text.find("a fake backend"), std::string::npos) << text;
  EXPECT_NE(text.find("OpenMP threads  7"), std::string::npos) << text;
}

TEST(InfoReport, OpSupportListsEveryOp) {
  std::string text = render_op_support();
  for (OpId op : all_ops())
    EXPECT_NE(text.find(std::string(op_name(op))), std::string::npos) << op_name(op);
}

TEST(CliBinary, InfoExitsZeroAndPrintsTheReport) {
  CommandResult r = run_gpuml("info");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("backends"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ref"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cpu"), std::string::npos) << r.output;
}

// GPUML_CPU_ISA caps the copy of the cpu loops a run uses (the info line names it); a value it
// does not take is refused naming the values, with a non-zero exit.
TEST(CliBinary, GpumlCpuIsaCapsTheLoopsAndRefusesOtherValues) {
  setenv("GPUML_CPU_ISA", "baseline", 1);
  CommandResult capped = run_gpuml("info");
  setenv("GPUML_CPU_ISA", "avx1024", 1);
  CommandResult bad = run_gpuml("info");
  unsetenv("GPUML_CPU_ISA");
  EXPECT_EQ(capped.exit_code, 0) << capped.output;
  EXPECT_NE(capped.output.find("own loops baseline"), std::string::npos) << capped.output;
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  EXPECT_NE(bad.output.find("GPUML_CPU_ISA='avx1024': expected baseline, avx2 or avx512"), std::string::npos)
      << bad.output;
}

TEST(CliBinary, UnknownCommandFailsWithAClearMessage) {
  CommandResult r = run_gpuml("nonsense");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("unknown command 'nonsense'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("info"), std::string::npos)
      << "should list the commands there are: " << r.output;
}

TEST(CliBinary, BadFlagFailsWithAClearMessage) {
  CommandResult r = run_gpuml("info --no-such-flag");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--no-such-flag"), std::string::npos) << r.output;
}

TEST(CliBinary, NoCommandFailsAndHelpSucceeds) {
  EXPECT_NE(run_gpuml("").exit_code, 0);
  CommandResult help = run_gpuml("--help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("info"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace gpuml
