// `jet postnas <step>`: the PostNAS steps (supernet, place, export, finetune) with one flag per option
// of the step's table (src/postnas/steps.h), and `run --config FILE` for the whole chain. The training steps
// (supernet, finetune, select, hwsearch) also run data parallel (src/postnas/dist.h): `--nproc N` launches N ranks
// of the same command; under torchrun's environment (WORLD_SIZE, RANK, ...) the process is that rank.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/check.h"
#include "core/device.h"
#include "postnas/dist.h"
#include "postnas/steps.h"

namespace {

using nlohmann::json;

std::string flag_of(const std::string& key) {
  std::string f = key;
  for (char& c : f)
    if (c == '_') c = '-';
  return f;
}

// The step's options as flags; values are kept as text and typed by resolve() through the default.
struct StepFlags {
  const jet::postnas::Step* step;
  std::map<std::string, std::string> text;
  std::map<std::string, bool> flags;

  void add_to(CLI::App& app) {
    for (const auto& o : step->options) {
      const std::string f = flag_of(o.key);
      if (o.def.is_boolean()) {
        const bool on_by_default = o.def.get<bool>();
        app.add_flag(on_by_default ? "--no-" + f : "--" + f, flags[o.key],
                     on_by_default ? "turn off: " + o.help : o.help);
      } else {
        std::string def = o.def.is_null() ? "required" : o.def.is_string() ? o.def.get<std::string>() : o.def.dump();
        app.add_option("--" + f, text[o.key], o.help + " [" + def + "]");
      }
    }
  }

  json to_json() const {
    json j = json::object();
    for (const auto& o : step->options) {
      if (o.def.is_boolean()) {
        if (flags.at(o.key)) j[o.key] = !o.def.get<bool>();
        continue;
      }
      const std::string& v = text.at(o.key);
      if (v.empty()) continue;
      if (o.def.is_null() || o.def.is_string()) {
        j[o.key] = v;
        continue;
      }
      try {
        j[o.key] = json::parse(v);
      } catch (const json::exception&) {
        JET_FAIL("--{}: '{}' is not a {}", flag_of(o.key), v, o.def.is_number() ? "number" : "JSON value");
      }
    }
    return j;
  }
};

// Data parallel: --nproc N without a world in the environment launches N ranks of this command; a rank (ours or
// torchrun's) joins the process group, then runs the step.
struct Parallel {
  int nproc = 1;
  int timeout_s = 600;

  void add_to(CLI::App& app) {
    app.add_option("--nproc", nproc, "data parallel: run N processes (ranks), each on batch / N rows of every step "
                                     "(cuda: one GPU each) [1]");
    app.add_option("--dist-timeout", timeout_s, "data parallel: seconds a rank waits for the others (rendezvous, "
                                                "collectives) before it fails [600]");
  }

  void run(const jet::postnas::Step& st, const json& o) const {
    namespace dist = jet::postnas::dist;
    JET_CHECK(nproc >= 1 && timeout_s >= 1, "--nproc and --dist-timeout must be positive");
    const dist::World w = dist::world_from_env();
    if (nproc > 1 && !std::getenv("WORLD_SIZE")) {
      JET_CHECK(o["batch"].get<int64_t>() % nproc == 0, "--batch {} is not a multiple of --nproc {}",
                o["batch"].get<int64_t>(), nproc);
      dist::check_backend(jet::parse_device(o["device"]), nproc);
      dist::launch(nproc, std::chrono::seconds(timeout_s));
      return;
    }
    JET_CHECK(nproc == 1 || nproc == w.size, "--nproc {} but WORLD_SIZE is {}", nproc, w.size);
    std::unique_ptr<dist::Group> group;
    if (w.size > 1)
      group = std::make_unique<dist::Group>(w, jet::parse_device(o["device"]), std::chrono::seconds(timeout_s));
    st.run(o);
  }
};

// A step or `run` that is not data parallel refuses a world in the environment (every rank would write its outputs).
void check_alone(const std::string& what) {
  JET_CHECK(jet::postnas::dist::world_from_env().size == 1,
            "jet postnas {}: runs as one process (data parallel: supernet, finetune, select and hwsearch, --nproc or "
            "torchrun)", what);
}

void setup(CLI::App& app) {
  app.require_subcommand(1);
  for (const auto& s : jet::postnas::steps()) {
    auto* sub = app.add_subcommand(s.name, s.help);
    auto flags = std::make_shared<StepFlags>(StepFlags{&s, {}, {}});
    flags->add_to(*sub);
    std::shared_ptr<Parallel> par;
    if (s.name == "supernet" || s.name == "finetune" || s.name == "select" || s.name == "hwsearch") {
      par = std::make_shared<Parallel>();
      par->add_to(*sub);
    }
    sub->callback([flags, par] {
      const auto& st = *flags->step;
      const json o = jet::postnas::resolve(st, flags->to_json(), "jet postnas " + st.name);
      if (par) return par->run(st, o);
      check_alone(st.name);
      st.run(o);
    });
  }
  auto* run = app.add_subcommand("run", "the whole chain from a config file, each step skipped when its output exists");
  auto config = std::make_shared<std::string>();
  run->add_option("--config", *config, "run config (JSON; see docs/POSTNAS.md and configs/)")->required();
  run->callback([config] {
    check_alone("run");
    std::ifstream f(*config);
    JET_CHECK(f, "{}: cannot read", *config);
    json j;
    try {
      j = json::parse(f);
    } catch (const json::exception& e) {
      JET_FAIL("{}: not valid JSON ({})", *config, e.what());
    }
    jet::postnas::run_pipeline(j, *config);
  });
}

}  // namespace

JET_COMMAND("postnas", "PostNAS: supernet distillation, attention placement search, export, finetune, run", setup);
