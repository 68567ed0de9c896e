// Standard benchmarks from the files of scripts/eval_data.sh (data/eval/<set>.jsonl, raw fields per item),
// formatted and scored as lm-evaluation-harness 0.4 defines each task:
//   multiple choice (hellaswag, arc_easy, arc_challenge, piqa, winogrande, boolq, openbookqa, sciq, mmlu):
//     one (context, target_delimiter + choice) log-likelihood request per choice; acc = argmax of the
//     summed log-likelihood, acc_norm = argmax of it divided by the choice's length in characters (the
//     harness's acc_norm; where the harness reports it); Winogrande puts each option into the context and
//     scores the shared rest of the sentence; MMLU is 5-shot (the subject's first 5 dev questions, the
//     harness's description and "A. ... Answer:" format), acc over all questions;
//   lambada: the text but its last word as context, " " + the last word as continuation; acc = the whole
//     word is the greedy continuation, ppl = exp(-mean log-likelihood).
// Token pairs follow the harness's causal-LM encoding: trailing spaces of the context move to the
// continuation, the context is encoded alone and the continuation is the rest of the encoded whole (no BOS).
// RULER-style synthetic tasks (Hsieh et al. 2024, "RULER") are built from RULER's data at a token length:
//   niah_single (one key, one 7-digit value), niah_multikey (4 keys, 1 asked), niah_multivalue (1 key, 4
//   values) hide "One of the special magic numbers for <key> is: <value>." sentences at seeded depths in
//   Paul Graham's essays; vt hides a chain of 4 variable assignments (VAR X = 12345, VAR Y = VAR X, ...) in
//   repeated filler; qa_squad puts a SQuAD question's paragraph among distractor paragraphs. The model
//   generates greedily (RULER's budgets: 128, 30, 32 tokens; stopped early once every reference is in the
//   output, which cannot change the score); score = fraction of references found (case-insensitive) for niah
//   and vt, any reference found for qa_squad, averaged over samples.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/eval.h"
#include "model/causal_lm.h"
#include "text/tokenizer.h"

namespace jet::eval {

// Calls fn(object, line number) for every non-blank line of a JSON Lines file; a missing file or a line that
// is not a JSON object gives one error naming the file (and line).
void read_jsonl(const std::string& path, const std::function<void(const nlohmann::json&, int64_t)>& fn);

const std::vector<std::string>& benchmark_names();  // the lm-evaluation-harness tasks above
const std::vector<std::string>& ruler_names();      // niah_single, niah_multikey, niah_multivalue, vt, qa_squad

struct BenchChoice {
  std::string context, continuation;  // continuation: the target delimiter + the choice
  int64_t chars = 0;                  // the choice's length in characters (acc_norm)
};
struct BenchItem {
  std::vector<BenchChoice> choices;  // lambada: one
  int32_t gold = 0;
};
struct Benchmark {
  std::string name, file;
  bool acc_norm = false;  // the harness reports acc_norm for this task
  bool lambada = false;   // acc = greedy, ppl
  int64_t total = 0;      // items in the file (items may be a --limit subsample)
  std::vector<BenchItem> items;
};
// Reads dir/<file> for a task of benchmark_names(); limit > 0 keeps a seeded subsample of that many
// items (in file order). Errors name the file (and line).
Benchmark load_benchmark(const std::string& name, const std::string& dir, int64_t limit, uint64_t seed);

// The harness's (context, continuation) -> token pair.
LlRequest encode_pair(const text::Tokenizer& tok, const std::string& context, const std::string& continuation);
std::vector<LlRequest> encode_benchmark(const Benchmark& b, const text::Tokenizer& tok);

struct BenchScore {
  double acc = 0, acc_norm = 0, ppl = 0;  // ppl: lambada
  std::vector<std::vector<double>> ll;    // per item and choice: the summed log-likelihood
  std::vector<int32_t> pred, pred_norm;   // per item: argmax (first of ties) of ll and of ll / chars
  std::vector<int> correct, correct_norm; // per item: counted by acc (lambada: greedy) and by acc_norm
};
// reqs: encode_benchmark(b, tok); scored by loglikelihoods() in batches of about batch_tokens.
BenchScore score_benchmark(const model::CausalLM& lm, const Benchmark& b, const std::vector<LlRequest>& reqs,
                           const OnProgress& on_progress = {}, int64_t batch_tokens = 16384);

// RULER's data, read once: the essay haystack's words, SQuAD's paragraphs and answerable questions.
struct RulerData {
  std::vector<std::string> essay_words, key_words;
  std::vector<std::string> squad_docs;
  struct Qa {
    std::string query;
    std::vector<std::string> outputs;
    int64_t context = 0;
    std::vector<int64_t> more;
  };
  std::vector<Qa> squad;
};
RulerData load_ruler(const std::string& dir);

struct RulerTask {
  std::string name;
  int64_t length = 0, max_new_tokens = 0;
  bool match_all = true;  // niah, vt: fraction of references found; qa: any
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<std::string>> refs;
};
// n samples whose prompt + max_new_tokens fits in `length` tokens (the haystack is the largest that does,
// to within a sentence / filler line / paragraph); deterministic in (seed, name, length).
RulerTask make_ruler(const std::string& name, int64_t length, const RulerData& data, const text::Tokenizer& tok,
                     int64_t n, uint64_t seed);
// Mean score in [0, 1]; on_progress gets the samples done. max_batch: sequences generated together.
double ruler_score(const model::CausalLM& lm, const RulerTask& task, const text::Tokenizer& tok, int64_t max_batch,
                   const OnProgress& on_progress = {});

}  // namespace jet::eval
