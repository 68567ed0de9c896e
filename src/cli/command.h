// Subcommand registry of the `jet` binary: each src/cli/cmd_<name>.cpp registers itself with
// JET_COMMAND(name, "help", setup) where setup(CLI::App& sub) declares its options and sets its
// callback. Errors thrown from callbacks (jet::Error, c10::Error) become one line and exit code 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace jet::cli {

struct Command {
  std::string name, help;
  std::function<void(CLI::App&)> setup;
};

std::vector<Command>& registry();

struct Registrar {
  Registrar(std::string name, std::string help, std::function<void(CLI::App&)> setup) {
    registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace jet::cli

#define JET_CONCAT_(a, b) a##b
#define JET_CONCAT(a, b) JET_CONCAT_(a, b)
#define JET_COMMAND(name, help, setup) \
  static ::jet::cli::Registrar JET_CONCAT(jet_command_, __LINE__)(name, help, setup)
