// The `ddpm` command line: one file per subcommand (tools/cmd_<name>.cpp), each adding itself to
// the CLI11 app; tools/main.cpp calls them all and turns ddpm::Error into a clean message and exit
// code 1 (2 for bad flags).
#pragma once
#include <CLI/CLI.hpp>

namespace ddpm::cli {

void add_train(CLI::App& app);
void add_sample(CLI::App& app);
void add_forward(CLI::App& app);
void add_trace(CLI::App& app);
void add_schedule(CLI::App& app);
void add_info(CLI::App& app);
void add_check_reference(CLI::App& app);
void add_classifier(CLI::App& app);
void add_eval(CLI::App& app);

}  // namespace ddpm::cli
