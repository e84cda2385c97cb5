// Which backends a --device string means, and how to name the one a run uses.
#pragma once

#include <string>

#include "graph/planner.h"

namespace gpuml {

// The backends a --device string means, in order of preference; errors say what is available.
// "auto" and "cuda" (no index) take GPU `local_rank` modulo the GPUs there (each rank of a
// data-parallel job its own GPU on its machine); "cuda:N" is GPU N whatever the rank.
PlanOptions plan_options_for_device(const std::string& device, int local_rank = 0);

// The device the plan computes on, as the user would name it ("cpu", "cuda:0"); "cpu (--device
// auto)" when it was chosen for them.
std::string device_used(const PlanOptions& plan, const std::string& requested);

}  // namespace gpuml
