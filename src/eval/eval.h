// Evaluation of any CausalLM through lm.forward(ids) alone (no cache), so a PostNAS supernet with its
// mixers switched to one sub-network is evaluated like any checkpoint. Everything runs under
// at::NoGradGuard on lm.device(); inputs may live anywhere.
//   perplexity: mean next-token NLL over fixed windows (a jet data set's held-out split).
//   passkey:    retrieval of a 5-digit key hidden at a random depth in repeated filler prose
//               (Mohtashami & Jaggi 2023, "Landmark Attention": the passkey prompt of the literature).
//   multiple choice: the choice with the highest mean log-probability per choice token (the
//               token-length-normalised log-likelihood); ties go to the first choice.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "text/tokenizer.h"

namespace jet::data {
class TokenSet;
}

namespace jet::eval {

// Called after each unit of work (a batch of windows, a sample, an item) with the units done so far.
using OnProgress = std::function<void(int64_t done)>;

struct Perplexity {
  double nll = 0, ppl = 0;  // mean NLL (nats per predicted token) and exp(nll)
  int64_t tokens = 0;       // predicted tokens: N * (T - 1)
};
// windows [N, T] int64 (T >= 2): predicts tokens 1..T-1 of each row from their prefixes, `batch` rows per
// forward; the fp32 log-probabilities exist for one row at a time, the model-dtype logits for one batch.
Perplexity perplexity(const model::CausalLM& lm, const at::Tensor& windows, int64_t batch = 4,
                      const OnProgress& on_progress = {});

// A log-likelihood request as lm-evaluation-harness defines one: the summed log-probability of the
// continuation's tokens given the context (and the continuation tokens before each), and whether every
// continuation token is the argmax there (greedy decoding would produce it).
struct LlRequest {
  std::vector<int32_t> context, continuation;  // both non-empty
};
struct LlResult {
  double logprob = 0;
  bool greedy = false;
};
// All requests, batched: rows of about batch_tokens tokens (longest first, right-padded), one forward per
// batch, only the read positions through the LM head; a request whose input (context + continuation but
// its last token) is a prefix of another's shares that row. on_progress gets the requests done.
std::vector<LlResult> loglikelihoods(const model::CausalLM& lm, const std::vector<LlRequest>& reqs,
                                     const OnProgress& on_progress = {}, int64_t batch_tokens = 16384);

struct PasskeyTask {
  int64_t length = 0;                                // asked length: |prompt| + |answer| <= length
  std::vector<std::vector<int32_t>> prompts, answers;  // answers[i]: the tokens of " <key>"
  std::vector<int32_t> keys;                         // the 5-digit keys
  std::vector<double> depths;                        // where the key sentence sits in the filler, in [0, 1]
};
// n samples: an instruction (after BOS where the tokenizer adds one), the filler sentences repeated, the key sentence at a seeded depth, the
// question "What is the pass key? The pass key is"; the filler repetition count makes |prompt| +
// |answer| the largest that fits in `length` (so it is within one filler unit, about 25 tokens, of it).
// Pieces are tokenised separately and concatenated. Keys and depths come from a counter-based hash of
// (seed, i): the same task on any machine.
PasskeyTask make_passkey(const text::Tokenizer& tok, int64_t length, int64_t n, uint64_t seed);
// The filler unit, in tokens (the tolerance of make_passkey's lengths).
int64_t passkey_filler_tokens(const text::Tokenizer& tok);
// Fraction of samples whose every answer token is the argmax given the prompt and the answer tokens
// before it (teacher forcing, equal to greedy decoding while it is right); through loglikelihoods().
double passkey_accuracy(const model::CausalLM& lm, const PasskeyTask& task, const OnProgress& on_progress = {});
struct PasskeyScore {
  double accuracy = 0;        // as passkey_accuracy
  double answer_logprob = 0;  // mean over samples of the answer tokens' summed log-probability (a smooth
                              // objective for placement search, where accuracy on few samples is coarse)
};
PasskeyScore passkey_score(const model::CausalLM& lm, const PasskeyTask& task, const OnProgress& on_progress = {});

struct McItem {
  std::vector<int32_t> context;
  std::vector<std::vector<int32_t>> choices;
  int32_t answer = 0;
};
struct McTask {
  std::string name;
  std::vector<McItem> items;
};
// Per item and choice: the mean log-probability of the choice's tokens given the context (and the choice
// tokens before each), through loglikelihoods(); on_progress gets the items done.
std::vector<std::vector<double>> mc_scores(const model::CausalLM& lm, const McTask& task,
                                           const OnProgress& on_progress = {});
// Fraction of items whose highest mc_scores choice (first of ties) is the answer.
double mc_accuracy(const model::CausalLM& lm, const McTask& task);
double mc_accuracy(const std::vector<std::vector<double>>& scores, const McTask& task);

// "holdout-cloze-4": no real multiple-choice benchmark ships in a Debian or PyPI package, so one is made
// from held-out text. The split is cut into consecutive passages of context_tokens + choice_tokens that
// hold no EOS (no document boundary); n items use passages spread evenly over the split; each item's
// context is a passage's first context_tokens tokens, its choices the passage's true continuation and the
// continuations of 3 other passages, the true one at a seeded position. Deterministic in (set, seed).
McTask make_holdout_cloze(const data::TokenSet& holdout, int64_t n, uint64_t seed, int64_t context_tokens = 96,
                          int64_t choice_tokens = 24);
// A multiple-choice set in JSON Lines, one item per line: {"context": str, "choices": [str, ...],
// "answer": int}; choices are tokenised as they are (give them their leading space).
McTask load_mc_jsonl(const std::string& path, const text::Tokenizer& tok);

}  // namespace jet::eval
