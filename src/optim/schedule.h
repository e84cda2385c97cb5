// Learning-rate schedules: the lr of every optimizer step, computed on the host and fed to the
// step graph through the "hyper" input (optim/optimizer.h), so changing it never rebuilds a graph.
//
//   ScheduleConfig s = parse_schedule("cosine:1e-5,warmup:100");
//   validate(s);
//   for (int64_t step = 0; step < total; ++step)
//     double lr = lr_at(s, /*base_lr*/ 3e-4, step, steps_per_epoch, total);
//
// Kinds (step is 0-based: the number of updates already made; epoch = step / steps_per_epoch):
//   constant  lr = base_lr
//   step      lr = base_lr * gamma^(epoch / step_size)           (torch StepLR stepped per epoch)
//   cosine    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2 with t = step - warmup,
//             T = total_steps - warmup (torch CosineAnnealingLR); min_lr from step total_steps on.
// Warm-up (any kind): for step < warmup_steps the lr above is scaled by (step + 1) / warmup_steps,
// a linear ramp that reaches the full lr on step warmup_steps - 1 and never makes a step with
// lr 0. The cosine starts after the warm-up; step decay counts epochs from step 0.
//
// CLI syntax (parse_schedule): KIND[:ARG[:ARG]][,warmup:N]
//   "constant"          "constant,warmup:500"
//   "step:S[:G]"        step_size S epochs (>= 1), gamma G (> 0, default 0.1): "step:2:0.5"
//   "cosine[:MIN_LR]"   min_lr (>= 0, default 0): "cosine", "cosine:1e-5,warmup:100"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gpuml::optim {

struct ScheduleConfig {
  std::string kind = "constant";  // constant | step | cosine
  int64_t step_size = 1;          // step: epochs between decays
  double gamma = 0.1;             // step: decay factor
  int64_t warmup_steps = 0;       // linear warm-up over this many optimizer steps
  double min_lr = 0.0;            // cosine: the lr it anneals to
};

// Throws Invalid naming the field, the value and what is allowed.
void validate(const ScheduleConfig& config);

// The lr for optimizer step `step` (0-based) of a run of total_steps steps. Throws Invalid for
// an invalid config, a negative step, steps_per_epoch < 1, base_lr <= 0, min_lr > base_lr, or a
// cosine schedule whose warm-up does not leave it at least one step.
double lr_at(const ScheduleConfig& config, double base_lr, int64_t step, int64_t steps_per_epoch,
             int64_t total_steps);

// Parses the CLI syntax above; throws Invalid quoting the spec and the expected syntax.
ScheduleConfig parse_schedule(std::string_view spec);

}  // namespace gpuml::optim
