// `jet postnas run`: the whole chain from one config (data → supernet → place per objective →
// [select] → export + finetune of the learned and uniform placements → eval), each step skipped when
// its output exists.
#include <algorithm>

#include <fmt/ranges.h>

#include "core/check.h"
#include "core/fs.h"
#include "data/prepare.h"
#include "eval/report.h"
#include "postnas/objectives.h"
#include "postnas/step_util.h"

namespace jet::postnas {

using namespace detail;

namespace {

// A step's options from the run config: the shared keys it has, its section, then the given extras.
json step_options(const Step& s, const json& cfg, const std::string& section, const json& extra, const std::string& where) {
  json j = json::object();
  for (const char* shared : {"teacher", "device", "dtype", "seed"})
    if (cfg.contains(shared) && std::any_of(s.options.begin(), s.options.end(), [&](const Option& o) { return o.key == shared; }))
      j[shared] = cfg[shared];
  if (cfg.contains(section))
    for (const auto& [k, v] : cfg[section].items()) j[k] = v;
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return resolve(s, j, where + " [" + section + "]");
}

// Runs a step unless its output exists; a step with checkpoints continues from its last one (a run that was
// stopped part-way through a step picks it up where it stopped).
void run_step(const Step& s, json o) {
  const std::string done = s.output(o);
  if (path_exists(done)) {
    say(fmt::format("{}: done already ({} exists)", s.name, done));
    return;
  }
  if (o.contains("resume")) o["resume"] = true;
  s.run(o);
  JET_CHECK(path_exists(done), "{}: did not finish ({} missing); rerun to resume", s.name, done);
}

// The teacher and the hybrids side by side (eval/report.h); the run config's "eval" section holds
// report options by their `jet eval` names.
void run_eval_step(const json& cfg, const std::string& data_dir, const std::vector<std::string>& models,
                   const std::string& out, const std::string& where) {
  if (path_exists(out)) {
    say("eval: done already (" + out + " exists)");
    return;
  }
  const json e = cfg.value("eval", json::object());
  eval::ReportOptions r;
  r.models = models;
  r.data = data_dir;
  r.device = cfg.value("device", "cpu");
  r.dtype = cfg.value("dtype", "fp32");
  r.json_out = out;
  r.seed = cfg.value("seed", 0);
  for (const auto& [k, v] : e.items()) {
    try {
      if (k == "tasks") r.tasks = split_list(v.get<std::string>());
      else if (k == "seq_len") r.seq_len = v;
      else if (k == "ppl_windows") r.ppl_windows = v;
      else if (k == "batch") r.batch = v;
      else if (k == "samples") r.samples = v;
      else if (k == "mc_items") r.mc_items = v;
      else if (k == "mc_context") r.mc_context = v;
      else if (k == "mc_choice") r.mc_choice = v;
      else if (k == "passkey_lengths") r.passkey_lengths = v.get<std::vector<int64_t>>();
      else JET_FAIL("{}: eval has no option '{}' (tasks, seq_len, ppl_windows, batch, samples, mc_items, mc_context, mc_choice, "
                    "passkey_lengths)",
                    where, k);
    } catch (const json::exception&) {
      JET_FAIL("{}: eval option '{}' has the wrong type ({})", where, k, v.dump());
    }
  }
  say("eval: " + fmt::format("{}", fmt::join(models, ", ")));
  eval::run_report(r);
}

const std::vector<std::string> kRunKeys = {"teacher", "out", "device", "dtype", "seed", "data", "budget", "supernet",
                                           "place", "select", "finetune", "uniform_baseline", "eval"};

}  // namespace

void run_pipeline(const json& cfg, const std::string& where) {
  JET_CHECK(cfg.is_object(), "{}: a run config is a JSON object", where);
  for (const auto& [k, v] : cfg.items())
    JET_CHECK(std::count(kRunKeys.begin(), kRunKeys.end(), k), "{}: unknown key '{}' (known: {})", where, k,
              fmt::format("{}", fmt::join(kRunKeys, ", ")));
  for (const char* k : {"teacher", "out", "data"}) JET_CHECK(cfg.contains(k), "{}: '{}' is required", where, k);
  const std::string out = cfg["out"];
  make_dirs(out);
  const json budget = cfg.value("budget", json{{"full", 2}, {"swa", 2}});
  const int64_t full = budget.value("full", 2), swa = budget.value("swa", 0);

  // 1. Data: the token set, prepared from text when it is not there yet.
  const json& dc = cfg["data"];
  JET_CHECK(dc.is_object() && dc.contains("dir"), "{}: data needs 'dir' (and 'input' to prepare it)", where);
  const std::string data_dir = dc["dir"];
  if (path_exists(data_dir + "/meta.json")) {
    say("data: done already (" + data_dir + ")");
  } else {
    JET_CHECK(dc.contains("input"), "{}: {} has no token set and data.input is not given", where, data_dir);
    data::PrepareOptions p;
    p.inputs = dc["input"].get<std::vector<std::string>>();
    p.holdout_inputs = dc.value("holdout_input", std::vector<std::string>{});
    p.tokenizer = cfg["teacher"];
    p.out = data_dir;
    p.holdout = dc.value("holdout", 0.01);
    say("data: prepare " + data_dir);
    data::prepare(p);
  }

  // 2. Supernet.
  const std::string sn = out + "/supernet";
  run_step(step("supernet"), step_options(step("supernet"), cfg, "supernet",
                                          {{"data", data_dir}, {"out", sn}, {"max_full", full}, {"max_swa", swa}}, where));

  // 3. Placement, once per objective.
  json place_cfg = cfg.value("place", json::object());
  std::vector<std::string> objectives = place_cfg.value("objectives", std::vector<std::string>{"kl"});
  place_cfg.erase("objectives");
  std::vector<std::string> finetuned = place_cfg.value("finetune", std::vector<std::string>{objectives.front()});
  place_cfg.erase("finetune");
  json cfg_place = cfg;
  cfg_place["place"] = place_cfg;
  std::vector<std::string> place_files;
  for (const auto& obj : objectives) {
    const std::string f = out + "/place-" + obj + ".json";
    run_step(step("place"), step_options(step("place"), cfg_place, "place",
                                         {{"data", data_dir}, {"supernet", sn}, {"out", f}, {"objective", obj},
                                          {"full", full}, {"swa", swa}}, where));
    place_files.push_back(f);
  }
  if (!path_exists(out + "/placements.png")) {
    try {
      plot_placements(place_files, out + "/placements.png");
    } catch (const Error& e) {
      say(std::string("no plot: ") + e.what());
    }
  }

  // 3b. Optional: the linear block types compared on the first objective's placement (a report).
  if (cfg.contains("select"))
    run_step(step("select"), step_options(step("select"), cfg, "select",
                                          {{"data", data_dir}, {"placement", place_files.front()}, {"out", out + "/select.json"}},
                                          where));

  // 4. Export + finetune: the learned placements asked for, and the uniform baseline.
  std::vector<std::pair<std::string, std::string>> hybrids;  // name, placement source
  for (const auto& obj : finetuned) hybrids.push_back({obj, out + "/place-" + obj + ".json"});
  if (cfg.value("uniform_baseline", true)) hybrids.push_back({"uniform", "uniform"});
  std::vector<std::string> models = {cfg["teacher"]};
  for (const auto& [name, src] : hybrids) {
    const std::string init = out + "/hybrid-" + name + "-init", fin = out + "/hybrid-" + name;
    run_step(step("export"), step_options(step("export"), cfg, "export",
                                          {{"supernet", sn}, {"placement", src}, {"full", full}, {"swa", swa}, {"out", init}},
                                          where));
    run_step(step("finetune"), step_options(step("finetune"), cfg, "finetune",
                                            {{"data", data_dir}, {"model", init}, {"out", fin}}, where));
    models.push_back(fin);
  }

  // 5. Evaluation: the teacher and the hybrids side by side.
  run_eval_step(cfg, data_dir, models, out + "/eval.json", where);
}

}  // namespace jet::postnas
