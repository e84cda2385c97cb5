// `gpuml info`.
#include <iostream>
#include <memory>

#include "backend/info.h"
#include "cli/commands.h"

namespace gpuml::cli {

Command add_info_command(CLI::App& app) {
  auto list_ops = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "Print the build, the CPU and its features, backends and devices");
  cmd->add_flag("--ops", *list_ops, "Also list every op with the dtypes each backend supports");
  return {cmd, [list_ops] {
            std::cout << render_system_report(collect_system_report());
            if (*list_ops) std::cout << '\n' << render_op_support();
            return 0;
          }};
}

}  // namespace gpuml::cli
