// Placement objectives (see objectives.h).
#include "postnas/objectives.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/ranges.h>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "data/tokens.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"

namespace jet::postnas {

std::vector<Option> objective_options() {
  return {{"objective", "kl", "kl (held-out KL to the teacher) | passkey (retrieval accuracy) | niah (RULER niah_single) | "
                              "mc (multiple choice) | a sum of them: kl+niah"},
          {"eval_windows", 8, "kl: held-out windows"},
          {"eval_seq_len", 256, "kl: tokens per window"},
          {"eval_batch", 4, "rows per forward"},
          {"passkey_length", 512, "passkey, niah: prompt tokens"},
          {"passkey_samples", 16, "passkey, niah: samples"},
          {"mc_task", "holdout-cloze", "mc: holdout-cloze (4 continuations of held-out text) or a benchmark (arc_easy, mmlu, ...)"},
          {"mc_items", 64, "mc: items (a benchmark: a seeded subsample)"},
          {"mc_context", 96, "mc holdout-cloze: context tokens per item"},
          {"mc_choice", 24, "mc holdout-cloze: tokens per choice"},
          {"eval_dir", "data/eval", "mc benchmark, niah: scripts/eval_data.sh's files"}};
}

namespace {

// A benchmark's accuracy (acc_norm where the harness reports it) on items encoded once; the mean
// log-probability of the right choice among the choices (scaled far below one item's 1/n) breaks ties.
// LAMBADA has one choice: its log-likelihood.
Objective benchmark_objective(const nlohmann::json& o, const text::Tokenizer& tok) {
  auto b = std::make_shared<eval::Benchmark>(
      eval::load_benchmark(o["mc_task"], o["eval_dir"], o["mc_items"], o["seed"].get<uint64_t>() + 29));
  auto reqs = std::make_shared<std::vector<eval::LlRequest>>(eval::encode_benchmark(*b, tok));
  return {"mc", [b, reqs](Supernet& n) {
            const eval::BenchScore s = eval::score_benchmark(n.lm(), *b, *reqs);
            double gold = 0;
            for (size_t i = 0; i < s.ll.size(); ++i) {
              const auto& ll = s.ll[i];
              const double hi = *std::max_element(ll.begin(), ll.end());
              double z = 0;
              for (double x : ll) z += std::exp(x - hi);
              gold += ll[b->items[i].gold] - hi - (ll.size() > 1 ? std::log(z) : 0.0);
            }
            return (b->acc_norm ? s.acc_norm : s.acc) + 1e-4 * gold / static_cast<double>(s.ll.size());
          }};
}

}  // namespace

Objective make_objective(Supernet& net, const nlohmann::json& o, const text::Tokenizer* tok) {
  const std::string name = o["objective"];
  const uint64_t seed = o["seed"];
  // "a+b": the sum of the parts' scores (e.g. kl+niah: retrieval first, the KL breaking its ties and steps).
  if (const size_t plus = name.find('+'); plus != std::string::npos) {
    std::vector<Objective> parts;
    for (size_t a = 0, b; a <= name.size(); a = b + 1) {
      b = std::min(name.find('+', a), name.size());
      JET_CHECK(b > a, "place: empty part in objective '{}'", name);
      nlohmann::json part = o;
      part["objective"] = name.substr(a, b - a);
      parts.push_back(make_objective(net, part, tok));
    }
    return {name, [parts](Supernet& n) {
              double sum = 0;
              for (const auto& p : parts) sum += p.score(n);
              return sum;
            }};
  }
  const auto text = [&]() -> const text::Tokenizer& {
    JET_CHECK(tok, "{} objective: the teacher has no tokenizer", name);
    return *tok;
  };
  if (name == "kl") {
    const auto holdout = data::TokenSet::open(o["data"], "holdout");
    return kl_objective(net, data::windows(holdout, o["eval_seq_len"], o["eval_windows"]), o["eval_batch"]);
  }
  if (name == "passkey") {
    auto task = std::make_shared<eval::PasskeyTask>(eval::make_passkey(text(), o["passkey_length"], o["passkey_samples"], seed + 17));
    // Accuracy first; the answer's log-probability (scaled far below one sample's 1/n) breaks its ties.
    return {"passkey", [task](Supernet& n) {
              const eval::PasskeyScore s = eval::passkey_score(n.lm(), *task);
              return s.accuracy + 1e-4 * s.answer_logprob;
            }};
  }
  if (name == "niah") {
    const eval::RulerData data = eval::load_ruler(o["eval_dir"]);
    auto task = std::make_shared<eval::RulerTask>(
        eval::make_ruler("niah_single", o["passkey_length"], data, text(), o["passkey_samples"], seed + 31));
    const int64_t gen_batch = parse_device(o["device"]).is_cuda() ? 16 : 4;
    return {"niah", [task, tok, gen_batch](Supernet& n) { return eval::ruler_score(n.lm(), *task, *tok, gen_batch); }};
  }
  if (name == "mc") {
    const std::string task = o["mc_task"];
    if (task != "holdout-cloze") {
      const auto& names = eval::benchmark_names();
      JET_CHECK(std::find(names.begin(), names.end(), task) != names.end(),
                "place: mc_task '{}' is neither holdout-cloze nor a benchmark ({})", task, fmt::join(names, ", "));
      return benchmark_objective(o, text());
    }
    const auto holdout = data::TokenSet::open(o["data"], "holdout");
    auto cloze = std::make_shared<eval::McTask>(
        eval::make_holdout_cloze(holdout, o["mc_items"], seed + 29, o["mc_context"], o["mc_choice"]));
    return {"mc", [cloze](Supernet& n) { return eval::mc_accuracy(n.lm(), *cloze); }};
  }
  JET_FAIL("place: unknown objective '{}' (kl, passkey, niah, mc)", name);
}

void plot_placements(const std::vector<std::string>& files, const std::string& png) {
  // The checkout's tools/plot_placement.py: $JET_ROOT's, the one this binary was built from, or the current
  // directory's (a binary built elsewhere and run from a copy of the tree, as on the device). $JET_PYTHON, else that
  // checkout's .venv (setup.sh installs matplotlib there), else python3.
  std::vector<std::string> roots;
  if (const char* r = std::getenv("JET_ROOT")) roots.push_back(r);
  roots.push_back(JET_SOURCE_DIR);
  roots.push_back(".");
  std::string root;
  for (const auto& r : roots)
    if (root.empty() && path_exists(r + "/tools/plot_placement.py")) root = r;
  JET_CHECK(!root.empty(), "--plot: tools/plot_placement.py is in none of {} ($JET_ROOT, the build's checkout, the "
            "current directory)", fmt::join(roots, ", "));
  const std::string script = root + "/tools/plot_placement.py";
  const char* env_py = std::getenv("JET_PYTHON");
  const std::string venv = root + "/.venv/bin/python3";
  const std::string py = env_py ? env_py : path_exists(venv) ? venv : "python3";
  std::string cmd = fmt::format("'{}' '{}' --out '{}'", py, script, png);
  for (const auto& f : files) cmd += " '" + f + "'";
  JET_CHECK(std::system(cmd.c_str()) == 0, "--plot: `{}` failed (needs python3 with matplotlib)", cmd);
}

}  // namespace jet::postnas
