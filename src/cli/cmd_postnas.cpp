// `jet postnas <step>`: the PostNAS steps (supernet, place, export, finetune) with one flag per option
// of the step's table (src/postnas/steps.h), and `run --config FILE` for the whole chain.
#include <fstream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/check.h"
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

void setup(CLI::App& app) {
  app.require_subcommand(1);
  for (const auto& s : jet::postnas::steps()) {
    auto* sub = app.add_subcommand(s.name, s.help);
    auto flags = std::make_shared<StepFlags>(StepFlags{&s, {}, {}});
    flags->add_to(*sub);
    sub->callback([flags] {
      const auto& st = *flags->step;
      st.run(jet::postnas::resolve(st, flags->to_json(), "jet postnas " + st.name));
    });
  }
  auto* run = app.add_subcommand("run", "the whole chain from a config file, each step skipped when its output exists");
  auto config = std::make_shared<std::string>();
  run->add_option("--config", *config, "run config (JSON; see docs/POSTNAS.md and configs/)")->required();
  run->callback([config] {
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
