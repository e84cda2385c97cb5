// The gpuml command line: parses flags and calls the library; nothing here is needed to use gpuml
// as a library, and everything it prints comes from a library function that tests call directly.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <iostream>
#include <string>
#include <vector>

#include "backend/info.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/spelling.h"

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

// The subcommand the command line reached (`gpuml data pack` -> pack), or the app itself.
CLI::App* deepest_parsed(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands())
    if (sub->parsed()) return deepest_parsed(sub);
  return app;
}

// "--epoch" -> "unknown flag '--epoch' for 'gpuml train' (did you mean '--epochs'?)"; empty when
// every flag on the line is known (the error is about something else).
std::string unknown_flag_message(CLI::App& app, int argc, char** argv) {
  CLI::App* cmd = deepest_parsed(&app);
  std::vector<std::string> known;
  for (CLI::App* a = cmd; a != nullptr; a = a->get_parent())
    for (const CLI::Option* o : a->get_options()) {
      for (const std::string& n : o->get_lnames()) known.push_back("--" + n);
      for (const std::string& n : o->get_snames()) known.push_back("-" + n);
    }
  std::string path;
  for (CLI::App* a = cmd; a != nullptr && a->get_parent() != nullptr; a = a->get_parent())
    path = " " + a->get_name() + path;
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.size() < 2 || word[0] != '-' || word == "--") continue;
    word = word.substr(0, word.find('='));
    if (std::find(known.begin(), known.end(), word) != known.end()) continue;
    if (word.size() > 1 && std::isdigit(static_cast<unsigned char>(word[1]))) continue;  // a negative number
    return fmt::format("unknown flag '{}' for 'gpuml{}'{}", word, path, gpuml::did_you_mean(word, known));
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gpuml: train and run neural networks on GPUs and CPUs"};
  app.set_version_flag("--version", std::string("gpuml ") + GPUML_VERSION);
  app.require_subcommand(1);

  std::vector<gpuml::cli::Command> commands = {
      gpuml::cli::add_train_command(app), gpuml::cli::add_eval_command(app),
      gpuml::cli::add_predict_command(app), gpuml::cli::add_export_command(app),
      gpuml::cli::add_info_command(app), gpuml::cli::add_data_command(app),
      gpuml::cli::add_generate_command(app)};

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
    const bool extras = dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr;
    std::string unknown_flag = extras ? unknown_flag_message(app, argc, argv) : "";
    if (!first.empty() && first[0] != '-' &&
        std::find(commands.begin(), commands.end(), first) == commands.end())
      std::cerr << "gpuml: error: unknown command '" << first << "' (commands: "
                << fmt::format("{}", fmt::join(commands, ", ")) << ")" << gpuml::did_you_mean(first, commands)
                << "\n";
    else if (!unknown_flag.empty())
      std::cerr << "gpuml: error: " << unknown_flag << "\n";
    else
      std::cerr << "gpuml: error: " << e.what() << "\n";
    std::cerr << "Run 'gpuml --help' for the commands, 'gpuml COMMAND --help' for their flags.\n";
    return kExitUsage;
  }

  try {
    for (const gpuml::cli::Command& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const gpuml::cli::UsageError& e) {
    std::cerr << "gpuml: error: " << e.what() << "\n";
    return kExitUsage;
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
