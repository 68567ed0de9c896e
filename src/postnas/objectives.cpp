// Placement objectives (see objectives.h).
#include "postnas/objectives.h"

#include <cstdlib>

#include "core/check.h"
#include "core/fs.h"
#include "data/tokens.h"
#include "eval/eval.h"

namespace jet::postnas {

std::vector<Option> objective_options() {
  return {{"objective", "kl", "kl (held-out KL to the teacher) | passkey (retrieval accuracy) | mc (multiple choice)"},
          {"eval_windows", 8, "kl: held-out windows"},
          {"eval_seq_len", 256, "kl: tokens per window"},
          {"eval_batch", 4, "rows per forward"},
          {"passkey_length", 512, "passkey: prompt tokens"},
          {"passkey_samples", 16, "passkey: samples"},
          {"mc_items", 64, "mc: holdout-cloze-4 items"},
          {"mc_context", 96, "mc: context tokens per item"},
          {"mc_choice", 24, "mc: tokens per choice"}};
}

Objective make_objective(Supernet& net, const nlohmann::json& o, const text::Tokenizer* tok) {
  const std::string name = o["objective"];
  if (name == "kl") {
    const auto holdout = data::TokenSet::open(o["data"], "holdout");
    return kl_objective(net, data::windows(holdout, o["eval_seq_len"], o["eval_windows"]), o["eval_batch"]);
  }
  if (name == "passkey") {
    JET_CHECK(tok, "passkey objective: the teacher has no tokenizer");
    auto task = std::make_shared<eval::PasskeyTask>(
        eval::make_passkey(*tok, o["passkey_length"], o["passkey_samples"], o["seed"].get<uint64_t>() + 17));
    // Accuracy first; the answer's log-probability (scaled far below one sample's 1/n) breaks its ties.
    return {"passkey", [task](Supernet& n) {
              const eval::PasskeyScore s = eval::passkey_score(n.lm(), *task);
              return s.accuracy + 1e-4 * s.answer_logprob;
            }};
  }
  if (name == "mc") {
    const auto holdout = data::TokenSet::open(o["data"], "holdout");
    auto task = std::make_shared<eval::McTask>(eval::make_holdout_cloze(holdout, o["mc_items"], o["seed"].get<uint64_t>() + 29,
                                                                          o["mc_context"], o["mc_choice"]));
    return {"mc", [task](Supernet& n) { return eval::mc_accuracy(n.lm(), *task); }};
  }
  JET_FAIL("place: unknown objective '{}' (kl, passkey, mc)", name);
}

void plot_placements(const std::vector<std::string>& files, const std::string& png) {
  // $JET_PYTHON, else the checkout's .venv (setup.sh installs matplotlib there), else python3.
  const char* env_py = std::getenv("JET_PYTHON");
  const std::string venv = std::string(JET_SOURCE_DIR) + "/.venv/bin/python3";
  const std::string py = env_py ? env_py : path_exists(venv) ? venv : "python3";
  const std::string script = std::string(JET_SOURCE_DIR) + "/tools/plot_placement.py";
  JET_CHECK(path_exists(script), "--plot: {} is missing", script);
  std::string cmd = fmt::format("'{}' '{}' --out '{}'", py, script, png);
  for (const auto& f : files) cmd += " '" + f + "'";
  JET_CHECK(std::system(cmd.c_str()) == 0, "--plot: `{}` failed (needs python3 with matplotlib)", cmd);
}

}  // namespace jet::postnas
