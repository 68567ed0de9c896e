// `jet postnas run`: the whole chain from one config (data → supernet → place per objective → export +
// finetune of the learned and uniform placements → eval → [select] → [hwsearch]; the two reports last, so a
// run cut short by its time budget still has its hybrids and their evaluation), each step skipped when its
// output exists. plan_run (run.h) resolves every step's options first.
#include "postnas/run.h"

#include <algorithm>
#include <functional>

#include <fmt/ranges.h>

#include "core/check.h"
#include "core/fs.h"
#include "core/strings.h"
#include "data/prepare.h"
#include "postnas/objectives.h"
#include "postnas/step_util.h"

namespace jet::postnas {

using namespace detail;

namespace {

// A step's options from the run config: the shared keys it has, its section, then the given extras.
PlannedStep plan_step(const std::string& name, const json& cfg, const std::string& section, const json& extra,
                      const std::string& where) {
  const Step& s = step(name);
  json j = json::object();
  for (const char* shared : {"teacher", "device", "dtype", "seed"})
    if (cfg.contains(shared) && std::any_of(s.options.begin(), s.options.end(), [&](const Option& o) { return o.key == shared; }))
      j[shared] = cfg[shared];
  if (cfg.contains(section)) {
    JET_CHECK(cfg[section].is_object(), "{}: '{}' must be an object", where, section);
    for (const auto& [k, v] : cfg[section].items()) j[k] = v;
  }
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return {&s, resolve(s, j, where + " [" + section + "]")};
}

// Runs a step unless its output exists; a step with checkpoints continues from its last one (a run that was
// stopped part-way through a step picks it up where it stopped).
void run_step(const PlannedStep& p) {
  const Step& s = *p.step;
  json o = p.options;
  const std::string done = s.output(o);
  if (path_exists(done)) {
    say(fmt::format("{}: done already ({} exists)", s.name, done));
    return;
  }
  if (o.contains("resume")) o["resume"] = true;
  s.run(o);
  JET_CHECK(path_exists(done), "{}: did not finish ({} missing); rerun to resume", s.name, done);
}

// The run config's "eval" section: report options (eval/report.h) by their `jet eval` names.
eval::ReportOptions eval_options(const json& cfg, const std::string& where) {
  eval::ReportOptions r;
  r.device = cfg.value("device", "cpu");
  r.dtype = cfg.value("dtype", "fp32");
  r.seed = cfg.value("seed", 0);
  const json e = cfg.value("eval", json::object());
  JET_CHECK(e.is_object(), "{}: 'eval' must be an object", where);
  using Setter = std::function<void(const json&)>;
  const auto integer = [](int64_t& dst) -> Setter {
    return [&dst](const json& v) { dst = v.is_number_integer() ? v.get<int64_t>() : throw std::invalid_argument(""); };
  };
  const auto integers = [](std::vector<int64_t>& dst) -> Setter {
    return [&dst](const json& v) {
      if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number_integer(); }))
        throw std::invalid_argument("");
      dst = v.get<std::vector<int64_t>>();
    };
  };
  const auto text = [](std::string& dst) -> Setter {
    return [&dst](const json& v) { dst = v.is_string() ? v.get<std::string>() : throw std::invalid_argument(""); };
  };
  const std::vector<std::pair<std::string, Setter>> keys = {
      {"tasks", [&r](const json& v) {  // "ppl,passkey" or ["ppl", "passkey"]
         if (v.is_string()) r.tasks = split_list(v.get<std::string>());
         else if (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); }))
           r.tasks = v.get<std::vector<std::string>>();
         else throw std::invalid_argument("");
       }},
      {"seq_len", integer(r.seq_len)}, {"ppl_windows", integer(r.ppl_windows)}, {"batch", integer(r.batch)},
      {"samples", integer(r.samples)}, {"mc_items", integer(r.mc_items)}, {"mc_context", integer(r.mc_context)},
      {"mc_choice", integer(r.mc_choice)}, {"passkey_lengths", integers(r.passkey_lengths)},
      {"limit", integer(r.limit)}, {"lengths", integers(r.lengths)}, {"batch_tokens", integer(r.batch_tokens)},
      {"eval_dir", text(r.eval_dir)}};
  for (const auto& [k, v] : e.items()) {
    auto it = std::find_if(keys.begin(), keys.end(), [&](const auto& kv) { return kv.first == k; });
    if (it == keys.end()) {
      std::vector<std::string> names;
      for (const auto& kv : keys) names.push_back(kv.first);
      JET_FAIL("{}: eval has no option '{}' ({})", where, k, fmt::join(names, ", "));
    }
    try {
      it->second(v);
    } catch (const std::exception&) {
      JET_FAIL("{}: eval option '{}' has the wrong type ({})", where, k, v.dump());
    }
  }
  return r;
}

std::vector<std::string> string_list(const json& j, const std::string& what, const std::string& where) {
  JET_CHECK(j.is_array() && !j.empty() && std::all_of(j.begin(), j.end(), [](const json& x) { return x.is_string(); }),
            "{}: {} must be a non-empty list of strings, got {}", where, what, j.dump());
  return j.get<std::vector<std::string>>();
}

const std::vector<std::string> kRunKeys = {"teacher", "out", "device", "dtype", "seed", "data", "budget", "supernet",
                                           "place", "select", "hwsearch", "finetune", "uniform_baseline", "eval"};

}  // namespace

RunPlan plan_run(const json& cfg, const std::string& where) {
  JET_CHECK(cfg.is_object(), "{}: a run config is a JSON object", where);
  for (const auto& [k, v] : cfg.items())
    JET_CHECK(std::count(kRunKeys.begin(), kRunKeys.end(), k), "{}: unknown key '{}' (known: {})", where, k,
              fmt::format("{}", fmt::join(kRunKeys, ", ")));
  for (const char* k : {"teacher", "out", "data"}) JET_CHECK(cfg.contains(k), "{}: '{}' is required", where, k);
  JET_CHECK(cfg["out"].is_string() && cfg["teacher"].is_string(), "{}: 'teacher' and 'out' must be strings", where);
  const json& dc = cfg["data"];
  JET_CHECK(dc.is_object() && dc.contains("dir") && dc["dir"].is_string(),
            "{}: data needs 'dir' (and 'input' to prepare it)", where);
  RunPlan p;
  p.out = cfg["out"];
  p.data_dir = dc["dir"];
  const json budget = cfg.value("budget", json{{"full", 2}, {"swa", 2}});
  p.full = budget.value("full", 2), p.swa = budget.value("swa", 0);
  const std::string& out = p.out;

  p.supernet = plan_step("supernet", cfg, "supernet",
                         {{"data", p.data_dir}, {"out", out + "/supernet"}, {"max_full", p.full}, {"max_swa", p.swa}}, where);

  // Placement, once per objective; "objectives" and "finetune" (the objectives whose placement becomes a
  // hybrid) are the run's, the rest of the section the place step's.
  json place_cfg = cfg.value("place", json::object());
  JET_CHECK(place_cfg.is_object(), "{}: 'place' must be an object", where);
  const auto objectives = string_list(place_cfg.value("objectives", json{"kl"}), "place.objectives", where);
  const auto finetuned = string_list(place_cfg.value("finetune", json{objectives.front()}), "place.finetune", where);
  for (const auto& f : finetuned)
    JET_CHECK(std::count(objectives.begin(), objectives.end(), f), "{}: place.finetune '{}' is not one of place.objectives",
              where, f);
  place_cfg.erase("objectives");
  place_cfg.erase("finetune");
  json cfg_place = cfg;
  cfg_place["place"] = place_cfg;
  auto place_file = [&](const std::string& obj) { return out + "/place-" + obj + ".json"; };
  for (const auto& obj : objectives)
    p.place.push_back(plan_step("place", cfg_place, "place",
                                {{"data", p.data_dir}, {"supernet", out + "/supernet"}, {"out", place_file(obj)},
                                 {"objective", obj}, {"full", p.full}, {"swa", p.swa}}, where));

  // Optional reports on the first objective's placement: block types, then (heads, d_k, d_v).
  auto report = [&](const std::string& name) -> std::optional<PlannedStep> {
    if (!cfg.contains(name)) return std::nullopt;
    return plan_step(name, cfg, name, {{"data", p.data_dir}, {"placement", place_file(objectives.front())},
                                       {"out", out + "/" + name + ".json"}}, where);
  };
  p.select = report("select");
  p.hwsearch = report("hwsearch");

  // Export + finetune: the learned placements asked for, and the uniform baseline.
  std::vector<std::pair<std::string, std::string>> hybrids;  // name, placement source
  for (const auto& obj : finetuned) hybrids.push_back({obj, place_file(obj)});
  if (cfg.value("uniform_baseline", true)) hybrids.push_back({"uniform", "uniform"});
  p.eval = eval_options(cfg, where);
  p.eval.models = {cfg["teacher"]};
  for (const auto& [name, src] : hybrids) {
    const std::string init = out + "/hybrid-" + name + "-init", fin = out + "/hybrid-" + name;
    p.hybrids.push_back(
        {plan_step("export", cfg, "export",
                   {{"supernet", out + "/supernet"}, {"placement", src}, {"full", p.full}, {"swa", p.swa}, {"out", init}}, where),
         plan_step("finetune", cfg, "finetune", {{"data", p.data_dir}, {"model", init}, {"out", fin}}, where)});
    p.eval.models.push_back(fin);
  }
  p.eval.data = p.data_dir;
  p.eval.json_out = out + "/eval.json";
  return p;
}

void run_pipeline(const json& cfg, const std::string& where) {
  const RunPlan p = plan_run(cfg, where);
  make_dirs(p.out);

  // 1. Data: the token set, prepared from text when it is not there yet.
  if (path_exists(p.data_dir + "/meta.json")) {
    say("data: done already (" + p.data_dir + ")");
  } else {
    const json& dc = cfg["data"];
    JET_CHECK(dc.contains("input"), "{}: {} has no token set and data.input is not given", where, p.data_dir);
    data::PrepareOptions prep;
    prep.inputs = dc["input"].get<std::vector<std::string>>();
    prep.holdout_inputs = dc.value("holdout_input", std::vector<std::string>{});
    prep.tokenizer = cfg["teacher"];
    prep.out = p.data_dir;
    prep.holdout = dc.value("holdout", 0.01);
    say("data: prepare " + p.data_dir);
    data::prepare(prep);
  }

  // 2. Supernet; 3. placement per objective (and their heat map).
  run_step(p.supernet);
  std::vector<std::string> place_files;
  for (const auto& s : p.place) {
    run_step(s);
    place_files.push_back(s.options["out"]);
  }
  if (!path_exists(p.out + "/placements.png")) {
    try {
      plot_placements(place_files, p.out + "/placements.png");
    } catch (const Error& e) {
      say(std::string("no plot: ") + e.what());
    }
  }

  // 4. Export + finetune of each hybrid.
  for (const auto& [exp, fin] : p.hybrids) {
    run_step(exp);
    run_step(fin);
  }

  // 5. Evaluation: the teacher and the hybrids side by side.
  if (path_exists(p.eval.json_out)) {
    say("eval: done already (" + p.eval.json_out + " exists)");
  } else {
    say("eval: " + fmt::format("{}", fmt::join(p.eval.models, ", ")));
    eval::run_report(p.eval);
  }

  // 6. Optional reports: block selection, hardware-aware search.
  if (p.select) run_step(*p.select);
  if (p.hwsearch) run_step(*p.hwsearch);
}

}  // namespace jet::postnas
