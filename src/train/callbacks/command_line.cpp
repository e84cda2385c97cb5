#include "train/callbacks.h"

#include <fmt/format.h>

namespace gpuml {

void add_command_line_callbacks(Trainer& trainer, const CommandLineOutput& output) {
  const TrainConfig& cfg = trainer.config();
  if (cfg.save_on_interrupt) trainer.add_callback(std::make_shared<StopOnSignals>());
  trainer.add_callback(std::make_shared<RunLogs>());  // first: it names the run directory the others use
  trainer.add_callback(std::make_shared<ProgressPrinter>(trainer, output.log, output.progress));
  trainer.add_callback(std::make_shared<Checkpoints>());
  if (cfg.patience > 0) trainer.add_callback(std::make_shared<EarlyStopping>(cfg.patience));
}

TrainResult train(const TrainConfig& config, DataParallel parallel) {
  const bool primary = !parallel.communicator || parallel.communicator->rank() == 0;
  Trainer trainer(config, {}, std::move(parallel));
  if (primary && !trainer.resume_warning().empty()) fmt::print(stderr, "warning: {}\n", trainer.resume_warning());
  CommandLineOutput output;
  if (trainer.config().quiet) output = {nullptr, nullptr};
  add_command_line_callbacks(trainer, output);
  return trainer.fit();
}

}  // namespace gpuml
