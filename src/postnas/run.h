// The plan of `jet postnas run` (run_pipeline, steps.h): every step's resolved options, worked out from
// the run config before anything runs, so a wrong key or type in any section fails at once.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/report.h"
#include "postnas/steps.h"

namespace jet::postnas {

struct PlannedStep {
  const Step* step = nullptr;
  nlohmann::json options;  // resolved (every key of the step's table)
};

struct RunPlan {
  std::string out, data_dir;
  int64_t full = 2, swa = 0;
  std::vector<PlannedStep> place;                 // one per objective: out/place-<objective>.json
  PlannedStep supernet;                           // out/supernet
  std::optional<PlannedStep> select, hwsearch;    // on the first objective's placement: out/select.json, out/hwsearch.json
  std::vector<std::pair<PlannedStep, PlannedStep>> hybrids;  // export, finetune: learned placements, then uniform
  eval::ReportOptions eval;                       // the teacher and the finetuned hybrids: out/eval.json
};

RunPlan plan_run(const nlohmann::json& config, const std::string& where);

}  // namespace jet::postnas
