// Each subcommand lives in its own cmd_<name>.cc and registers itself with the CLI11 app here.
// A command's callback stores its exit status in *exit_code; errors are printed by ReportError.
#pragma once

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace dualblade::cli {

// Prints "dualblade <command>: <message>" to stderr and returns the exit code for the status
// (1 for every error; 0 for OK). The only place a Status becomes a sentence for the user.
int ReportError(const char* command, const Status& status);

// One per subcommand, called by main() in the order the help lists them.
void AddFormatCommand(CLI::App& app, int* exit_code);
void AddInfoCommand(CLI::App& app, int* exit_code);
void AddIobenchCommand(CLI::App& app, int* exit_code);
void AddMkmodelCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);

}  // namespace dualblade::cli
