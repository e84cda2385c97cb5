#include "train/precision.h"

#include <fmt/format.h>

#include <vector>

#include "core/error.h"
#include "core/system_info.h"

namespace gpuml {

Precision parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  GPUML_FAIL(ErrorKind::Invalid, "--precision: expected fp32, tf32 or bf16, got '{}'", name);
}

std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
  }
  return "fp32";
}

Autocast autocast_for(Precision precision) { return precision == Precision::bf16 ? Autocast::bf16 : Autocast::off; }

void apply_precision(Precision precision, PlanOptions& plan) { plan.allow_tf32 = precision == Precision::tf32; }

std::string precision_note(Precision precision, const Backend& backend) {
  if (precision == Precision::tf32 && backend.device().is_host())
    return fmt::format("tf32: {} has no TF32 units; f32 matmul and convolutions compute in full f32", backend.name());
  if (precision != Precision::bf16) return "";
  std::vector<std::string_view> missing;
  for (OpId op : {OpId::matmul, OpId::conv2d})
    if (!backend.supports(op, DType::bf16)) missing.push_back(op_name(op));
  if (missing.empty()) {
    // The cpu backend's oneDNN runs bf16 on any AVX-512 CPU, but without bf16 arithmetic it
    // converts every operand to f32 and back: 5x slower than fp32 on such a machine (BENCHMARKS.md).
    CpuFeatures cpu = detect_cpu_features();
    if (backend.name() == "cpu" && !cpu.avx512_bf16 && !cpu.amx_bf16)
      return fmt::format("bf16: this CPU has no bf16 arithmetic (AVX-512 BF16 or AMX), so {} emulates it and "
                         "--precision fp32 is likely faster here",
                         backend.name());
    return "";
  }
  return fmt::format("bf16: {} has no bf16 {} on this machine; they run on another backend (slowly on the "
                     "reference one), so --precision fp32 is likely faster here",
                     backend.name(), fmt::join(missing, " or "));
}

}  // namespace gpuml
