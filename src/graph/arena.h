// Arena packing: the last stage of planning. Every Arena value of a plan gets a 64-byte aligned
// range of its device's arena; buffers whose lifetimes (first write to last read, outputs to the
// end) do not overlap share memory, so a step's peak memory is known before it runs.
//
//   compute_lifetimes(plan);                            // after every step is emitted
//   pack_arenas(plan, placement, /*reuse_memory=*/true);
#pragma once

#include "graph/placement.h"
#include "graph/planner.h"

namespace gpuml {

// Sets first_step / last_step of every Arena value: the step that writes it and the last step
// that reads it or any alias of it; plan outputs (copied out after the last step) live to the end.
void compute_lifetimes(Plan& plan);

// Groups Arena values into one arena per device (allocated by the device's first backend in
// `placement`) and sets their bytes and offsets and each arena's peak and unshared bytes.
// reuse_memory = false: every buffer gets its own range (for tests).
void pack_arenas(Plan& plan, const Placement& placement, bool reuse_memory);

}  // namespace gpuml
