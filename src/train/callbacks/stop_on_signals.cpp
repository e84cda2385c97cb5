#include <atomic>
#include <csignal>

#include "train/callbacks.h"

namespace gpuml {

namespace {

// The signal that asked training to stop. A signal handler can only reach a global; this is the
// one the library keeps (and only a StopOnSignals callback installs the handler).
std::atomic<int> g_stop_signal{0};
extern "C" void request_stop(int signal) { g_stop_signal.store(signal); }

}  // namespace

struct StopOnSignals::Saved {
  struct sigaction old_int {}, old_term {};
};

StopOnSignals::StopOnSignals() : saved_(std::make_unique<Saved>()) {}

StopOnSignals::~StopOnSignals() { restore(); }

void StopOnSignals::on_train_begin(TrainState&) {
  if (installed_) return;
  g_stop_signal.store(0);
  struct sigaction action {};
  action.sa_handler = request_stop;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &saved_->old_int);
  sigaction(SIGTERM, &action, &saved_->old_term);
  installed_ = true;
}

void StopOnSignals::on_step_end(TrainState& st) {
  if (int signal = g_stop_signal.load()) st.stop_signal = signal;
}

void StopOnSignals::on_train_end(TrainState&) { restore(); }

// The handlers that were there before, back: at the run's end, or when fit() left by an exception.
void StopOnSignals::restore() {
  if (!installed_) return;
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  installed_ = false;
}

}  // namespace gpuml
