// dualblade: the command-line entry point. Parses arguments with CLI11 and dispatches to the
// subcommands declared in commands.h.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace dualblade::cli {

int ReportError(const char* command, const Status& status) {
  if (status.ok()) return 0;
  std::string msg = status.message();
  if (!msg.empty() && msg.back() != '.') msg += '.';
  std::fprintf(stderr, "dualblade %s: %s\n", command, msg.c_str());
  return 1;
}

}  // namespace dualblade::cli

int main(int argc, char** argv) {
  CLI::App app{
      "dualblade: LLM inference whose KV cache lives on NVMe and streams back while the model "
      "runs.\nSizes accept K, M, G suffixes (powers of 1024)."};
  app.set_version_flag("--version", "dualblade 0.1.0");
  app.require_subcommand(1);
  int exit_code = 0;
  // Subcommands, in the order --help lists them.
  dualblade::cli::AddFormatCommand(app, &exit_code);
  dualblade::cli::AddInfoCommand(app, &exit_code);
  dualblade::cli::AddIobenchCommand(app, &exit_code);
  dualblade::cli::AddMkmodelCommand(app, &exit_code);
  dualblade::cli::AddRunCommand(app, &exit_code);
  dualblade::cli::AddBenchCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
