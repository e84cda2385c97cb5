// The gpuml commands: each adds its subcommand and flags to the CLI11 app and returns the
// function that runs it after parsing. Commands only parse and call the library.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <stdexcept>

namespace gpuml::cli {

// A command line that cannot run as given, found after parsing (a non-empty `train --out`):
// main reports it as it reports a flag CLI11 refused, with exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_info_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_export_command(CLI::App& app);
Command add_data_command(CLI::App& app);
Command add_generate_command(CLI::App& app);

}  // namespace gpuml::cli
