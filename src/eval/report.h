// The evaluation report that `jet eval` prints and PostNAS's pipeline ends with: every model on the same
// tasks (held-out perplexity, passkey per length, multiple choice), one model in memory at a time, a
// side-by-side table on stdout (rows = metrics, columns = models) and optionally the numbers as JSON,
// written atomically. Every option is checked, the data set opened and the tasks tokenised before the
// first model loads, so bad input fails before any work.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::eval {

struct ReportOptions {
  std::vector<std::string> models;                 // GGUF files or HF directories
  std::vector<std::string> tasks = {"ppl", "passkey"};  // ppl | passkey | mc | benchmark_names() | ruler_names()
  std::string data;                                // jet data set (its holdout split); ppl and holdout-cloze-4
  std::string device = "cpu", dtype = "fp32";
  std::string json_out;                            // "" = no JSON file
  std::string mc_jsonl;                            // a JSON Lines MC set instead of holdout-cloze-4
  int64_t seq_len = 512, ppl_windows = 64, batch = 4;  // ppl_windows < 0: all that fit
  int64_t samples = 20;                            // passkey samples per length
  int64_t mc_items = 100, mc_context = 96, mc_choice = 24;
  std::vector<int64_t> passkey_lengths = {512, 1024, 2048, 4096};
  std::string eval_dir = "data/eval";              // scripts/eval_data.sh's benchmark files
  int64_t limit = 0;                               // benchmark items per task (seeded subsample); 0 = all
  int64_t batch_tokens = 0;  // benchmark log-likelihood batches (rows x length); 0: 16384 on CUDA, 512 on the CPU
  std::vector<int64_t> lengths = {1024, 2048, 4096, 8192};  // RULER task lengths (samples per length: samples)
  uint64_t seed = 0;
};

// Runs the report; returns what --json writes: {"settings": {...}, "models": [{path, name, parameters,
// max_position_embeddings, seconds, metrics: {ppl, passkey: [...], mc, <benchmark>: {acc, acc_norm, ppl,
// items, ll, pred, pred_norm}, <ruler task>: [{length, score, samples}]}}]}.
nlohmann::json run_report(const ReportOptions& o);

}  // namespace jet::eval
