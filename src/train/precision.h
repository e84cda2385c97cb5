// Training precision (--precision), and what it asks of the graph builder and the planner.
//
//   Precision p = parse_precision("bf16");              // throws Invalid naming the choices
//   PlanOptions plan;  apply_precision(p, plan);         // tf32: matmul/conv steps may use TF32
//   graph.set_autocast(autocast_for(p));                 // bf16: matmul/conv in bf16 (ops/build.h)
//
//  fp32  every op in f32 (the default).
//  tf32  as fp32, but f32 matmul and convolutions may run on TF32 tensor cores (10-bit mantissa
//        inputs, f32 accumulation). Only GPUs have them: on CPUs it computes exactly as fp32.
//  bf16  mixed precision: matmul/conv inputs and the activations between layers in bf16 with f32
//        accumulation; master weights, gradients of weights, optimizer state, losses, softmax,
//        norms and reductions in f32.
#pragma once

#include <string>
#include <string_view>

#include "graph/planner.h"

namespace gpuml {

enum class Precision { fp32, tf32, bf16 };

Precision parse_precision(std::string_view name);
std::string_view precision_name(Precision precision);
Autocast autocast_for(Precision precision);
void apply_precision(Precision precision, PlanOptions& plan);
// What a user should know about `precision` on `backend` (the first one ops are placed on), for
// the run's header: TF32 that a CPU does not have, bf16 kernels that this machine lacks. Empty
// when there is nothing to say.
std::string precision_note(Precision precision, const Backend& backend);

}  // namespace gpuml
