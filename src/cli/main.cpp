// The gpuml command line: parses flags and calls the library; nothing here is needed to use gpuml
// as a library, and everything it prints comes from a library function that tests call directly.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "backend/info.h"
#include "cli/commands.h"
#include "core/error.h"

namespace {

// Exit codes, so that scripts can tell a typo from a failed run.
constexpr int kExitError = 1;  // the command ran and failed (gpuml::Error)
constexpr int kExitUsage = 2;  // bad command line

std::vector<std::string> command_names(CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gpuml: train and run neural networks on GPUs and CPUs"};
  app.set_version_flag("--version", std::string("gpuml ") + GPUML_VERSION);
  app.require_subcommand(1);

  std::vector<gpuml::cli::Command> commands = {
      gpuml::cli::add_train_command(app), gpuml::cli::add_eval_command(app),
      gpuml::cli::add_predict_command(app), gpuml::cli::add_export_command(app),
      gpuml::cli::add_info_command(app), gpuml::cli::add_data_command(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports an unknown command as a missing one; name the word the user typed instead.
    std::string first = argc > 1 ? argv[1] : "";
    std::vector<std::string> commands = command_names(app);
    if (!first.empty() && first[0] != '-' &&
        std::find(commands.begin(), commands.end(), first) == commands.end())
      std::cerr << "gpuml: error: unknown command '" << first
                << "' (commands: " << fmt::format("{}", fmt::join(commands, ", ")) << ")\n";
    else
      std::cerr << "gpuml: error: " << e.what() << "\n";
    std::cerr << "Run 'gpuml --help' for the commands, 'gpuml COMMAND --help' for their flags.\n";
    return kExitUsage;
  }

  try {
    for (const gpuml::cli::Command& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const gpuml::Error& e) {
    std::cerr << "gpuml: error (" << gpuml::error_kind_name(e.kind()) << "): " << e.message()
              << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "gpuml: internal error: " << e.what() << "\n";
    return kExitError;
  }
  return kExitUsage;  // unreachable while require_subcommand(1) holds
}
