// `jet`: one binary, one subcommand per job (generate, info, convert, ...; see `jet --help`).
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli/command.h"
#include "core/check.h"

namespace jet::cli {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace jet::cli

namespace {

// CPU tensors of 128 KB – 32 MB (activations, logits rows) come and go every forward; glibc's default serves them
// with mmap/munmap, so every use faults its pages in again. Kept on the heap (and the heap trimmed only past 256 MB
// free) a CPU `jet eval` takes half the page faults and 4–10% less time (SmolLM2, ARC-Easy, 2 threads). A user's own
// GLIBC_TUNABLES / MALLOC_* settings win.
void tune_malloc() {
#ifdef __GLIBC__
  if (std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc();
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
