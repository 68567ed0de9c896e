// The objectives the placement search can score a supernet placement with, built from a step's
// options: held-out KL to the teacher, passkey retrieval, RULER niah_single retrieval, multiple choice
// (holdout-cloze or a real benchmark of eval/benchmarks.h); higher is better for all.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "postnas/place.h"
#include "postnas/steps.h"

namespace jet::text {
class Tokenizer;
}

namespace jet::postnas {

// objective, eval_windows, eval_seq_len, eval_batch, passkey_length, passkey_samples, mc_task, mc_items, mc_context,
// mc_choice, eval_dir.
std::vector<Option> objective_options();
// o: resolved options holding those keys plus data, device and seed; the tasks are built and tokenised here, once.
// tok: needed by every objective but kl; it must outlive the objective (niah decodes with it).
Objective make_objective(Supernet& net, const nlohmann::json& o, const text::Tokenizer* tok);

// A PNG heat map of per-layer gains, one row per place result, by tools/plot_placement.py of the first checkout
// that has it: $JET_ROOT, the one the binary was built from, the current directory. Python: $JET_PYTHON, else that
// checkout's .venv, else python3 (matplotlib needed); a one-line error when the script or the plot fails.
void plot_placements(const std::vector<std::string>& place_jsons, const std::string& png);

}  // namespace jet::postnas
