// `jet postnas run`'s plan (postnas/run.h): each section reaches its step with the run's paths, the eval
// section's keys reach the report options, and a wrong key or type anywhere fails before anything runs.
#include <gtest/gtest.h>

#include "../error_of.h"
#include "core/fs.h"
#include "postnas/objectives.h"
#include "postnas/run.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace {

using nlohmann::json;
using jet::test::error_of;

json base_config() {
  return {{"teacher", "teacher-dir"}, {"out", "/tmp/jet_test_run_plan_never_made"}, {"seed", 5}, {"data", {{"dir", "tok"}}},
          {"budget", {{"full", 1}, {"swa", 1}}},
          {"place", {{"objectives", {"kl", "mc"}}, {"mc_task", "arc_easy"}, {"eval_dir", "evaldata"}}}};
}

TEST(RunPlan, SectionsReachTheirSteps) {
  json cfg = base_config();
  cfg["select"] = {{"types", "jet,gdn"}, {"steps", 3}};
  cfg["hwsearch"] = {{"heads", "2,4"}, {"head_dims", "16,32"}, {"time_len", 32}};
  cfg["eval"] = {{"tasks", "ppl,arc_easy,niah_single"}, {"limit", 50}, {"lengths", {1024, 4096}},
                 {"batch_tokens", 4096}, {"eval_dir", "evaldata"}, {"samples", 3}};
  const auto p = jet::postnas::plan_run(cfg, "cfg.json");
  const std::string out = cfg["out"];
  ASSERT_EQ(p.place.size(), 2u);
  EXPECT_EQ(p.place[1].options["objective"], "mc");
  EXPECT_EQ(p.place[1].options["mc_task"], "arc_easy");
  EXPECT_EQ(p.place[1].options["out"], out + "/place-mc.json");
  ASSERT_TRUE(p.select && p.hwsearch);
  EXPECT_EQ(p.select->options["types"], "jet,gdn");
  const json& hw = p.hwsearch->options;
  EXPECT_EQ(p.hwsearch->step->name, "hwsearch");
  EXPECT_EQ(hw["placement"], out + "/place-kl.json");  // the first objective's
  EXPECT_EQ(hw["out"], out + "/hwsearch.json");
  EXPECT_EQ(hw["heads"], "2,4");
  EXPECT_EQ(hw["time_len"], 32);
  EXPECT_EQ(hw["seed"], 5);        // shared keys
  EXPECT_EQ(hw["time_batch"], 64);  // defaults filled in
  ASSERT_EQ(p.hybrids.size(), 2u);  // learned (kl) + uniform
  EXPECT_EQ(p.hybrids[0].first.options["placement"], out + "/place-kl.json");
  EXPECT_EQ(p.hybrids[1].first.options["placement"], "uniform");
  EXPECT_EQ(p.eval.models, (std::vector<std::string>{"teacher-dir", out + "/hybrid-kl", out + "/hybrid-uniform"}));
  EXPECT_EQ(p.eval.tasks, (std::vector<std::string>{"ppl", "arc_easy", "niah_single"}));
  EXPECT_EQ(p.eval.limit, 50);
  EXPECT_EQ(p.eval.lengths, (std::vector<int64_t>{1024, 4096}));
  EXPECT_EQ(p.eval.batch_tokens, 4096);
  EXPECT_EQ(p.eval.eval_dir, "evaldata");
  EXPECT_EQ(p.eval.samples, 3);
  EXPECT_EQ(p.eval.json_out, out + "/eval.json");
  EXPECT_FALSE(jet::path_exists(out));  // planning writes nothing
}

TEST(RunPlan, OptionalReportsAreOff) {
  const auto p = jet::postnas::plan_run(base_config(), "cfg.json");
  EXPECT_FALSE(p.select || p.hwsearch);
}

TEST(RunPlan, BadKeysAndTypesAreOneLineErrors) {
  auto err = [](const std::string& section, const json& v) {
    json cfg = base_config();
    cfg[section] = v;
    return error_of([&] { jet::postnas::plan_run(cfg, "cfg.json"); });
  };
  EXPECT_NE(err("eval", {{"limits", 5}}).find("cfg.json: eval has no option 'limits' ("), std::string::npos);
  EXPECT_NE(err("eval", {{"limit", "5"}}).find("eval option 'limit' has the wrong type (\"5\")"), std::string::npos);
  EXPECT_NE(err("eval", {{"limit", 2.5}}).find("eval option 'limit' has the wrong type"), std::string::npos);
  EXPECT_NE(err("eval", {{"lengths", 1024}}).find("eval option 'lengths' has the wrong type (1024)"), std::string::npos);
  EXPECT_NE(err("eval", {{"lengths", {1024, "x"}}}).find("eval option 'lengths' has the wrong type"), std::string::npos);
  EXPECT_NE(err("eval", {{"eval_dir", 3}}).find("eval option 'eval_dir' has the wrong type"), std::string::npos);
  EXPECT_NE(err("eval", {{"batch_tokens", true}}).find("'batch_tokens' has the wrong type"), std::string::npos);
  EXPECT_NE(err("hwsearch", {{"headz", "2"}}).find("[hwsearch]"), std::string::npos);
  EXPECT_NE(err("hwsearch", {{"heads", 2}}).find("[hwsearch]"), std::string::npos);
  EXPECT_NE(err("hwsearch", json::array()).find("'hwsearch' must be an object"), std::string::npos);
  EXPECT_NE(err("place", {{"objectives", {"kl"}}, {"finetune", {"mc"}}}).find("'mc' is not one of place.objectives"),
            std::string::npos);
  EXPECT_NE(err("place", {{"objectives", "kl"}}).find("place.objectives must be a non-empty list"), std::string::npos);
  EXPECT_NE(err("surprise", 1).find("unknown key 'surprise'"), std::string::npos);
}

}  // namespace

namespace {

// plot_placements takes $JET_ROOT's tools/plot_placement.py before the build's checkout (a binary built elsewhere,
// run from a copy of the tree).
TEST(PlotPlacements, JetRootsScriptFirst) {
  const std::string root = "/tmp/jet_test_plot_root", out = root + "/out.png";
  jet::make_dirs(root + "/tools");
  std::ofstream(root + "/tools/plot_placement.py")
      << "import sys\nopen(sys.argv[sys.argv.index('--out') + 1], 'w').write('fake:' + sys.argv[-1])\n";
  setenv("JET_PYTHON", "python3", 1);
  setenv("JET_ROOT", root.c_str(), 1);
  std::remove(out.c_str());
  jet::postnas::plot_placements({"place-kl.json"}, out);
  std::stringstream got;
  got << std::ifstream(out).rdbuf();
  EXPECT_EQ(got.str(), "fake:place-kl.json");
  unsetenv("JET_ROOT");
  unsetenv("JET_PYTHON");
}

}  // namespace
