// A progress bar for long loops, on stderr: count/total, elapsed<remaining, rate and extra
// fields on one updating line when stderr is a terminal; plain periodic lines otherwise (logs,
// CI), so a redirected run stays readable.
//
//   ProgressBar bar("epoch 1/5", loader.batches_per_epoch(), /*unit*/ "samples");
//   for (...) { ...; bar.advance(1, batch_size, fmt::format("loss {:.4f}", loss)); }
//   bar.finish("loss 0.3121 acc 0.8912");
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace gpuml {

class ProgressBar {
 public:
  // `total` steps; the rate is reported in `unit`s per second (advance() says how many per step).
  ProgressBar(std::string label, int64_t total, std::string unit = "it", std::FILE* out = stderr);
  // Forces the plain (non-TTY) style, e.g. for tests.
  void set_interactive(bool interactive) { interactive_ = interactive; }
  // For loops that learn their length once they run (gpuml data pack's CSV estimate): create the
  // bar before the work starts, so its clock and rate include the first items, then set the total.
  void set_total(int64_t total) { total_ = total; }
  // A loop resumed part-way: the count starts at `done` of the total; the time left is estimated
  // from the steps taken since.
  void resume_at(int64_t done) { done_ = resumed_at_ = done; }
  void advance(int64_t steps, int64_t units, const std::string& extra = "");
  void finish(const std::string& extra = "");
  // "1:05" or "12.3s"
  static std::string format_duration(double seconds);
  // The text of the current line, without terminal control characters.
  std::string line(const std::string& extra) const;

 private:
  using Clock = std::chrono::steady_clock;
  double elapsed() const;

  std::string label_, unit_;
  int64_t total_ = 0, done_ = 0, resumed_at_ = 0, units_ = 0;
  std::FILE* out_;
  bool interactive_ = false;
  Clock::time_point start_;
  double last_print_ = -1e9;
};

}  // namespace gpuml
