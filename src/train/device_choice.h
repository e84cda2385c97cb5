// Which backends a --device string means, and how to name the one a run uses.
#pragma once

#include <string>

#include "graph/planner.h"

namespace gpuml {

// The backends a --device string means, in order of preference; errors say what is available.
PlanOptions plan_options_for_device(const std::string& device);

// The device the plan computes on, as the user would name it ("cpu", "cuda:0"); "cpu (--device
// auto)" when it was chosen for them.
std::string device_used(const PlanOptions& plan, const std::string& requested);

}  // namespace gpuml
