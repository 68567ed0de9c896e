// `jet`: one binary, one subcommand per job (generate, info, convert, ...; see `jet --help`).
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>

#include "cli/command.h"
#include "core/check.h"

namespace jet::cli {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace jet::cli

int main(int argc, char** argv) {
  CLI::App app{"jet: Jet-Nemotron in C++ (PostNAS, hybrid linear-attention LMs, generation engine)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "jet 0.1");
  auto& cmds = jet::cli::registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (auto& c : cmds) c.setup(*app.add_subcommand(c.name, c.help));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fprintf(stderr, "jet: error: %s\n", e.what());  // bad flag or value: one line, exit code 1
    return 1;
  } catch (const jet::Error& e) {
    fprintf(stderr, "jet: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fprintf(stderr, "jet: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "jet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
