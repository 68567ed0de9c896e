// The PostNAS steps as the CLI and `jet postnas run` drive them. Each step has one option table
// (key, default, help): the CLI turns it into --flags, the run config into JSON keys, and both give
// the step a JSON object with every key filled in (unknown keys and wrong types are one-line errors).
//   supernet  teacher + data → DIR/supernet.safetensors (+ supernet.json, checkpoints)
//   place     supernet + held-out data → placement JSON (importance table, top placements)
//   export    supernet + placement → HF directory of the hybrid (layer_types, efficient_attention_config)
//   finetune  hybrid dir + teacher + data → HF directory of the distilled hybrid
// `run` chains data → supernet → place (each objective) → export/finetune (learned and uniform
// placements) → eval, skipping each step whose output exists.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::postnas {

struct Option {
  std::string key;     // JSON key; the CLI flag is --key with '_' → '-'
  nlohmann::json def;  // default (its JSON type is the option's type); null: required string
  std::string help;
};

struct Step {
  std::string name, help;
  std::vector<Option> options;
  std::function<std::string(const nlohmann::json&)> output;  // the path that exists once the step is done
  std::function<void(const nlohmann::json&)> run;
};

const std::vector<Step>& steps();
const Step& step(const std::string& name);
// `given` with the step's defaults filled in; unknown keys, wrong types and missing required keys throw.
nlohmann::json resolve(const Step& s, const nlohmann::json& given, const std::string& where);

// The whole chain from a run config (see docs/POSTNAS.md for its keys).
void run_pipeline(const nlohmann::json& config, const std::string& where);

}  // namespace jet::postnas
