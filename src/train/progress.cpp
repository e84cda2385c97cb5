#include "train/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace gpuml {

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, std::FILE* out)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out),
      interactive_(isatty(fileno(out)) != 0), start_(Clock::now()) {}

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

std::string ProgressBar::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<int64_t>(seconds);
  if (s < 3600) return fmt::format("{}:{:02d}", s / 60, s % 60);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

std::string ProgressBar::line(const std::string& extra) const {
  double t = elapsed();
  const int64_t taken = done_ - resumed_at_;
  double remaining = taken > 0 ? t * static_cast<double>(total_ - done_) / static_cast<double>(taken) : NAN;
  // Below 10 ms the rate is noise (a first update right after the clock started): say "?".
  constexpr double kShortestRateSeconds = 0.01;
  const std::string rate =
      t >= kShortestRateSeconds ? fmt::format("{:.0f}", static_cast<double>(units_) / t) : std::string("?");
  int width = 24;
  int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : width;
  std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  std::string text = fmt::format("{} [{}] {}/{} {}<{} {} {}/s", label_, bar, done_, total_, format_duration(t),
                                 format_duration(remaining), rate, unit_);
  if (!extra.empty()) text += "  " + extra;
  return text;
}

void ProgressBar::advance(int64_t steps, int64_t units, const std::string& extra) {
  done_ += steps;
  units_ += units;
  double t = elapsed();
  // A terminal gets ~10 redraws a second; a log gets a line every 10 seconds.
  double interval = interactive_ ? 0.1 : 10.0;
  if (t - last_print_ < interval) return;
  last_print_ = t;
  if (interactive_) fmt::print(out_, "\r\033[K{}", line(extra));
  else fmt::print(out_, "{}\n", line(extra));
  std::fflush(out_);
}

void ProgressBar::finish(const std::string& extra) {
  if (interactive_) fmt::print(out_, "\r\033[K{}\n", line(extra));
  else fmt::print(out_, "{}\n", line(extra));
  std::fflush(out_);
}

}  // namespace gpuml
