#include "optim/schedule.h"

#include <charconv>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.h"

namespace gpuml::optim {

namespace {

constexpr const char* kSyntax =
    "expected KIND[:ARG[:ARG]][,warmup:N] with KIND constant, step:STEP_SIZE[:GAMMA] or cosine[:MIN_LR], "
    "e.g. \"step:2:0.5\" or \"cosine:1e-5,warmup:100\"";

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  while (true) {
    size_t end = text.find(sep, begin);
    parts.push_back(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) return parts;
    begin = end + 1;
  }
}

template <typename Number>
Number parse_number(std::string_view text, std::string_view spec, const char* what) {
  Number value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  GPUML_CHECK(error == std::errc() && end == text.data() + text.size() && !text.empty(),
              "schedule '{}': {} '{}' is not a valid number; {}", spec, what, text, kSyntax);
  return value;
}

}  // namespace

void validate(const ScheduleConfig& c) {
  GPUML_CHECK(c.kind == "constant" || c.kind == "step" || c.kind == "cosine",
              "schedule: unknown kind '{}'; valid kinds are constant, step, cosine", c.kind);
  GPUML_CHECK(c.warmup_steps >= 0, "schedule {}: warmup_steps must be >= 0, got {}", c.kind, c.warmup_steps);
  GPUML_CHECK(c.step_size >= 1, "schedule {}: step_size must be >= 1 epoch, got {}", c.kind, c.step_size);
  GPUML_CHECK(std::isfinite(c.gamma) && c.gamma > 0.0, "schedule {}: gamma must be > 0, got {}", c.kind, c.gamma);
  GPUML_CHECK(std::isfinite(c.min_lr) && c.min_lr >= 0.0, "schedule {}: min_lr must be >= 0, got {}", c.kind,
              c.min_lr);
}

double lr_at(const ScheduleConfig& c, double base_lr, int64_t step, int64_t steps_per_epoch, int64_t total_steps) {
  validate(c);
  GPUML_CHECK(std::isfinite(base_lr) && base_lr > 0.0, "schedule {}: base lr must be > 0, got {}", c.kind, base_lr);
  GPUML_CHECK(step >= 0, "schedule {}: step counts from 0, got {}", c.kind, step);
  GPUML_CHECK(steps_per_epoch >= 1, "schedule {}: steps_per_epoch must be >= 1, got {}", c.kind, steps_per_epoch);
  double lr = base_lr;
  if (c.kind == "step") {
    int64_t epoch = step / steps_per_epoch;
    lr = base_lr * std::pow(c.gamma, static_cast<double>(epoch / c.step_size));
  } else if (c.kind == "cosine") {
    GPUML_CHECK(c.min_lr <= base_lr, "schedule cosine: min_lr {} is above the base lr {}", c.min_lr, base_lr);
    GPUML_CHECK(total_steps > c.warmup_steps,
                "schedule cosine: total_steps {} must exceed warmup_steps {} to leave steps to anneal", total_steps,
                c.warmup_steps);
    int64_t t = step - c.warmup_steps, span = total_steps - c.warmup_steps;
    if (t >= span) lr = c.min_lr;
    else if (t > 0)
      lr = c.min_lr + (base_lr - c.min_lr) *
                          (1.0 + std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(span))) / 2.0;
  }
  if (step < c.warmup_steps) lr *= static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  return lr;
}

ScheduleConfig parse_schedule(std::string_view spec) {
  std::vector<std::string_view> sections = split(spec, ',');
  GPUML_CHECK(sections.size() <= 2, "schedule '{}': too many ',' sections; {}", spec, kSyntax);
  ScheduleConfig c;
  std::vector<std::string_view> fields = split(sections[0], ':');
  c.kind = std::string(fields[0]);
  GPUML_CHECK(c.kind == "constant" || c.kind == "step" || c.kind == "cosine",
              "schedule '{}': unknown kind '{}'; {}", spec, c.kind, kSyntax);
  size_t max_args = c.kind == "step" ? 2 : c.kind == "cosine" ? 1 : 0;
  GPUML_CHECK(fields.size() - 1 <= max_args, "schedule '{}': {} takes at most {} ':' arguments; {}", spec, c.kind,
              max_args, kSyntax);
  if (c.kind == "step") {
    GPUML_CHECK(fields.size() >= 2, "schedule '{}': step needs a STEP_SIZE in epochs; {}", spec, kSyntax);
    c.step_size = parse_number<int64_t>(fields[1], spec, "STEP_SIZE");
    if (fields.size() == 3) c.gamma = parse_number<double>(fields[2], spec, "GAMMA");
  } else if (c.kind == "cosine" && fields.size() == 2) {
    c.min_lr = parse_number<double>(fields[1], spec, "MIN_LR");
  }
  if (sections.size() == 2) {
    std::vector<std::string_view> warmup = split(sections[1], ':');
    GPUML_CHECK(warmup.size() == 2 && warmup[0] == "warmup", "schedule '{}': '{}' should be warmup:N; {}", spec,
                sections[1], kSyntax);
    c.warmup_steps = parse_number<int64_t>(warmup[1], spec, "warmup N");
  }
  validate(c);
  return c;
}

}  // namespace gpuml::optim
