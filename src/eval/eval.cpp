// perplexity, passkey and multiple choice on a CausalLM through forward() alone.
#include "eval/eval.h"

#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/hash.h"
#include "data/tokens.h"
#include "eval/benchmarks.h"

namespace jet::eval {
namespace {

void check_ids(const model::CausalLM& lm, const std::vector<int32_t>& ids, const char* what) {
  const int64_t vocab = lm.config().vocab_size;
  for (int32_t t : ids)
    JET_CHECK(t >= 0 && t < vocab, "{}: token {} outside the model's vocabulary of {}", what, t, vocab);
}

// Counter-based draws for the task makers: hash i of stream `tag` under `seed`.
uint64_t draw(uint64_t seed, uint64_t tag, uint64_t i) { return mix64(mix64(mix64(seed) ^ tag) + i); }

const char* kPasskeyIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you "
    "about the important information there.";
const char* kPasskeyFiller = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
const char* kPasskeyQuestion = " What is the pass key? The pass key is";

}  // namespace

Perplexity perplexity(const model::CausalLM& lm, const at::Tensor& windows, int64_t batch,
                      const OnProgress& on_progress) {
  JET_CHECK(windows.defined() && windows.dim() == 2 && windows.scalar_type() == at::kLong,
            "perplexity: windows must be an int64 [N, T] tensor");
  JET_CHECK(windows.size(0) > 0 && windows.size(1) >= 2, "perplexity: need N >= 1 windows of T >= 2 tokens, got [{}, {}]",
            windows.size(0), windows.size(1));
  JET_CHECK(batch > 0, "perplexity: batch must be positive, got {}", batch);
  at::NoGradGuard no_grad;
  const int64_t N = windows.size(0), T = windows.size(1);
  double sum = 0;
  for (int64_t b0 = 0; b0 < N; b0 += batch) {
    const at::Tensor ids = windows.slice(0, b0, std::min(N, b0 + batch)).to(lm.device());
    const at::Tensor logits = lm.forward(ids);  // [b, T, V], model dtype
    at::Tensor batch_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(lm.device()));
    for (int64_t r = 0; r < ids.size(0); ++r) {  // fp32 logits one row at a time; one host sync per batch
      const at::Tensor lf = logits[r].slice(0, 0, T - 1).to(at::kFloat);  // [T-1, V]
      const at::Tensor target = ids[r].slice(0, 1, T).unsqueeze(-1);
      const at::Tensor nll = lf.logsumexp(-1) - lf.gather(-1, target).squeeze(-1);
      batch_sum += nll.to(at::kDouble).sum();
    }
    sum += batch_sum.item<double>();
    if (on_progress) on_progress(std::min(N, b0 + batch));
  }
  Perplexity p;
  p.tokens = N * (T - 1);
  p.nll = sum / static_cast<double>(p.tokens);
  p.ppl = std::exp(p.nll);
  return p;
}

std::vector<LlResult> loglikelihoods(const model::CausalLM& lm, const std::vector<LlRequest>& reqs,
                                     const OnProgress& on_progress, int64_t batch_tokens) {
  JET_CHECK(batch_tokens > 0, "loglikelihoods: batch_tokens must be positive, got {}", batch_tokens);
  at::NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(reqs.size());
  // Each request reads the positions of its input = context + continuation but its last token. Rows are the
  // distinct inputs; an input that is a prefix of another is read from that one's row (in lexicographic
  // order such an input is a prefix of its successor), so choices that share a context and differ only in
  // their last token (MMLU's " A".." D") take one row.
  std::vector<std::vector<int32_t>> inputs(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto& [ctx, cont] = reqs[i];
    JET_CHECK(!ctx.empty() && !cont.empty(), "loglikelihoods: request {} has an empty context or continuation", i);
    check_ids(lm, ctx, "loglikelihoods");
    check_ids(lm, cont, "loglikelihoods");
    inputs[i] = ctx;
    inputs[i].insert(inputs[i].end(), cont.begin(), cont.end() - 1);
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return inputs[a] < inputs[b]; });
  std::vector<int64_t> row_of(n);      // request -> the request whose input is its row
  for (int64_t k = n - 1; k >= 0; --k) {
    const int64_t i = order[k];
    row_of[i] = i;
    if (k + 1 < n) {
      const auto& next = inputs[row_of[order[k + 1]]];
      if (next.size() >= inputs[i].size() && std::equal(inputs[i].begin(), inputs[i].end(), next.begin()))
        row_of[i] = row_of[order[k + 1]];
    }
  }
  std::vector<int64_t> rows;  // row heads, longest first
  std::vector<std::vector<int64_t>> readers(n);
  for (int64_t i = 0; i < n; ++i) {
    if (row_of[i] == i) rows.push_back(i);
    readers[row_of[i]].push_back(i);
  }
  std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return inputs[a].size() > inputs[b].size(); });

  std::vector<LlResult> out(n);
  int64_t done = 0;
  constexpr int64_t kHeadRows = 1024;  // positions per LM-head call (bounds the [rows, V] fp32 logits)
  for (size_t r0 = 0; r0 < rows.size();) {
    const auto L = static_cast<int64_t>(inputs[rows[r0]].size());
    const auto b = static_cast<size_t>(std::max<int64_t>(1, batch_tokens / L));
    const size_t r1 = std::min(rows.size(), r0 + b);
    const auto B = static_cast<int64_t>(r1 - r0);
    std::vector<int64_t> ids(static_cast<size_t>(B * L)), pick, target;
    std::vector<int64_t> owner;  // request of each picked position
    for (int64_t r = 0; r < B; ++r) {
      // Right-padded with the row's last token: causal mixing keeps the padding out of every read position.
      const auto& in = inputs[rows[r0 + r]];
      for (int64_t t = 0; t < L; ++t) ids[r * L + t] = in[std::min<size_t>(t, in.size() - 1)];
      for (int64_t i : readers[rows[r0 + r]]) {
        const auto C = static_cast<int64_t>(reqs[i].context.size());
        for (size_t j = 0; j < reqs[i].continuation.size(); ++j) {
          pick.push_back(r * L + C - 1 + static_cast<int64_t>(j));
          target.push_back(reqs[i].continuation[j]);
          owner.push_back(i);
        }
      }
    }
    const at::Tensor h = lm.hidden(at::tensor(ids, at::kLong).view({B, L}).to(lm.device()));
    const at::Tensor flat = h.reshape({B * L, h.size(-1)});
    const at::Tensor pick_t = at::tensor(pick, at::kLong).to(lm.device());
    const at::Tensor tgt = at::tensor(target, at::kLong).to(lm.device());
    std::vector<at::Tensor> lps, hits;
    const auto P = static_cast<int64_t>(pick.size());
    for (int64_t p0 = 0; p0 < P; p0 += kHeadRows) {
      const int64_t p1 = std::min(P, p0 + kHeadRows);
      const at::Tensor logits = lm.lm_head(flat.index_select(0, pick_t.slice(0, p0, p1))).to(at::kFloat);
      const at::Tensor t = tgt.slice(0, p0, p1);
      hits.push_back(logits.argmax(-1).eq(t));
      lps.push_back(at::log_softmax(logits, -1).gather(-1, t.unsqueeze(-1)).squeeze(-1));
    }
    const at::Tensor lp = at::cat(lps).to(at::kDouble).to(at::kCPU), hit = at::cat(hits).to(at::kCPU);
    const double* lpp = lp.data_ptr<double>();
    const bool* hp = hit.data_ptr<bool>();
    for (int64_t r = 0; r < B; ++r)
      for (int64_t i : readers[rows[r0 + r]]) out[i] = {0, true};
    for (int64_t k = 0; k < P; ++k) {
      out[owner[k]].logprob += lpp[k];
      out[owner[k]].greedy = out[owner[k]].greedy && hp[k];
    }
    for (int64_t r = 0; r < B; ++r) done += static_cast<int64_t>(readers[rows[r0 + r]].size());
    r0 = r1;
    if (on_progress) on_progress(done);
  }
  return out;
}

int64_t passkey_filler_tokens(const text::Tokenizer& tok) {
  return static_cast<int64_t>(tok.encode(kPasskeyFiller).size());
}

PasskeyTask make_passkey(const text::Tokenizer& tok, int64_t length, int64_t n, uint64_t seed) {
  JET_CHECK(n > 0, "passkey: the number of samples must be positive, got {}", n);
  // The prompt starts as a document does: with BOS where the tokenizer asks for one.
  const auto intro = tok.encode(kPasskeyIntro, /*add_special_tokens=*/true), filler = tok.encode(kPasskeyFiller),
             question = tok.encode(kPasskeyQuestion);
  JET_CHECK(!filler.empty(), "passkey: the tokenizer encodes the filler to nothing");
  PasskeyTask task;
  task.length = length;
  for (int64_t i = 0; i < n; ++i) {
    const auto key = static_cast<int32_t>(10000 + hash_below(draw(seed, 1, i), 90000));
    const auto key_ids = tok.encode(fmt::format(" The pass key is {0}. Remember it. {0} is the pass key.", key));
    auto answer = tok.encode(fmt::format(" {}", key));
    const int64_t fixed = static_cast<int64_t>(intro.size() + key_ids.size() + question.size() + answer.size());
    JET_CHECK(length >= fixed + static_cast<int64_t>(filler.size()),
              "passkey: length {} is too short (the prompt without filler takes {} tokens, one filler unit {})",
              length, fixed, filler.size());
    const int64_t reps = (length - fixed) / static_cast<int64_t>(filler.size());
    const double depth = hash_unit(draw(seed, 2, i));
    const auto before = static_cast<int64_t>(depth * static_cast<double>(reps) + 0.5);
    std::vector<int32_t> prompt(intro);
    for (int64_t r = 0; r < reps; ++r) {
      if (r == before) prompt.insert(prompt.end(), key_ids.begin(), key_ids.end());
      prompt.insert(prompt.end(), filler.begin(), filler.end());
    }
    if (before == reps) prompt.insert(prompt.end(), key_ids.begin(), key_ids.end());
    prompt.insert(prompt.end(), question.begin(), question.end());
    task.prompts.push_back(std::move(prompt));
    task.answers.push_back(std::move(answer));
    task.keys.push_back(key);
    task.depths.push_back(reps > 0 ? static_cast<double>(before) / static_cast<double>(reps) : 0.0);
  }
  return task;
}

PasskeyScore passkey_score(const model::CausalLM& lm, const PasskeyTask& task, const OnProgress& on_progress) {
  JET_CHECK(!task.prompts.empty() && task.prompts.size() == task.answers.size(),
            "passkey: {} prompts and {} answers", task.prompts.size(), task.answers.size());
  std::vector<LlRequest> reqs;
  for (size_t i = 0; i < task.prompts.size(); ++i) {
    JET_CHECK(!task.prompts[i].empty() && !task.answers[i].empty(), "passkey: sample {} has an empty prompt or answer", i);
    reqs.push_back({task.prompts[i], task.answers[i]});
  }
  const auto ll = loglikelihoods(lm, reqs, on_progress);
  PasskeyScore score;
  for (const auto& r : ll) {
    score.accuracy += r.greedy;
    score.answer_logprob += r.logprob;
  }
  score.accuracy /= static_cast<double>(ll.size());
  score.answer_logprob /= static_cast<double>(ll.size());
  return score;
}

double passkey_accuracy(const model::CausalLM& lm, const PasskeyTask& task, const OnProgress& on_progress) {
  return passkey_score(lm, task, on_progress).accuracy;
}

std::vector<std::vector<double>> mc_scores(const model::CausalLM& lm, const McTask& task,
                                           const OnProgress& on_progress) {
  JET_CHECK(!task.items.empty(), "{}: no items", task.name);
  std::vector<LlRequest> reqs;
  for (size_t k = 0; k < task.items.size(); ++k) {
    const McItem& item = task.items[k];
    JET_CHECK(!item.context.empty() && item.choices.size() >= 2, "{} item {}: needs a context and >= 2 choices",
              task.name, k);
    JET_CHECK(item.answer >= 0 && item.answer < static_cast<int32_t>(item.choices.size()),
              "{} item {}: answer {} outside the {} choices", task.name, k, item.answer, item.choices.size());
    for (const auto& c : item.choices) {
      JET_CHECK(!c.empty(), "{} item {}: an empty choice", task.name, k);
      reqs.push_back({item.context, c});
    }
  }
  // Progress in items: the requests of item k end at ends[k].
  std::vector<int64_t> ends;
  for (const auto& item : task.items) ends.push_back((ends.empty() ? 0 : ends.back()) + static_cast<int64_t>(item.choices.size()));
  const auto ll = loglikelihoods(lm, reqs, on_progress ? OnProgress([&](int64_t done) {
    on_progress(std::upper_bound(ends.begin(), ends.end(), done) - ends.begin());
  }) : OnProgress());
  std::vector<std::vector<double>> scores;
  size_t r = 0;
  for (const auto& item : task.items) {
    std::vector<double> s;
    for (const auto& c : item.choices) s.push_back(ll[r++].logprob / static_cast<double>(c.size()));
    scores.push_back(std::move(s));
  }
  return scores;
}

double mc_accuracy(const std::vector<std::vector<double>>& scores, const McTask& task) {
  JET_CHECK(scores.size() == task.items.size() && !scores.empty(), "{}: {} scores for {} items", task.name,
            scores.size(), task.items.size());
  int64_t right = 0;
  for (size_t k = 0; k < scores.size(); ++k) {
    const auto best = std::max_element(scores[k].begin(), scores[k].end()) - scores[k].begin();
    right += best == task.items[k].answer;
  }
  return static_cast<double>(right) / static_cast<double>(scores.size());
}

double mc_accuracy(const model::CausalLM& lm, const McTask& task) { return mc_accuracy(mc_scores(lm, task), task); }

McTask make_holdout_cloze(const data::TokenSet& holdout, int64_t n, uint64_t seed, int64_t context_tokens,
                          int64_t choice_tokens) {
  JET_CHECK(n > 0 && context_tokens > 0 && choice_tokens > 0,
            "holdout-cloze: items, context and choice tokens must be positive, got {}, {}, {}", n, context_tokens,
            choice_tokens);
  const int64_t L = context_tokens + choice_tokens;
  const int64_t blocks = holdout.size() / L;
  std::vector<int64_t> starts;  // passages without a document boundary
  for (int64_t b = 0; b < blocks; ++b) {
    const at::Tensor t = holdout.read(b * L, L);
    if (holdout.eos_id() < 0 || !t.eq(holdout.eos_id()).any().item<bool>()) starts.push_back(b * L);
  }
  const auto P = static_cast<int64_t>(starts.size());
  JET_CHECK(P >= 4, "{}/{}: {} passages of {} tokens without a document boundary; holdout-cloze-4 needs >= 4",
            holdout.dir(), holdout.split(), P, L);
  auto to_ids = [](const at::Tensor& t) {
    const int64_t* p = t.data_ptr<int64_t>();
    return std::vector<int32_t>(p, p + t.numel());
  };
  McTask task;
  task.name = "holdout-cloze-4";
  const int64_t items = std::min(n, P);
  for (int64_t i = 0; i < items; ++i) {
    const int64_t own = i * P / items;  // spread evenly over the split
    McItem item;
    item.context = to_ids(holdout.read(starts[own], context_tokens));
    std::vector<int64_t> used = {own};
    for (uint64_t j = 0; used.size() < 4; ++j) {
      const auto other = static_cast<int64_t>(hash_below(draw(seed, 3, (static_cast<uint64_t>(i) << 20) + j), P));
      if (std::find(used.begin(), used.end(), other) == used.end()) used.push_back(other);
    }
    item.answer = static_cast<int32_t>(hash_below(draw(seed, 4, i), 4));
    std::swap(used[0], used[item.answer]);
    for (int64_t p : used) item.choices.push_back(to_ids(holdout.read(starts[p] + context_tokens, choice_tokens)));
    task.items.push_back(std::move(item));
  }
  return task;
}

McTask load_mc_jsonl(const std::string& path, const text::Tokenizer& tok) {
  McTask task;
  task.name = path.substr(path.find_last_of('/') + 1);
  read_jsonl(path, [&](const nlohmann::json& j, int64_t line_no) {
    JET_CHECK(j.contains("context") && j["context"].is_string() && j.contains("choices") && j["choices"].is_array() &&
                  j.contains("answer") && j["answer"].is_number_integer(),
              "{}:{}: expected {{\"context\": str, \"choices\": [str, ...], \"answer\": int}}", path, line_no);
    McItem item;
    item.context = tok.encode(j["context"].get<std::string>());
    for (const auto& c : j["choices"]) {
      JET_CHECK(c.is_string(), "{}:{}: choices must be strings", path, line_no);
      item.choices.push_back(tok.encode(c.get<std::string>()));
    }
    item.answer = j["answer"].get<int32_t>();
    JET_CHECK(item.choices.size() >= 2 && item.answer >= 0 && item.answer < static_cast<int32_t>(item.choices.size()),
              "{}:{}: needs >= 2 choices and an answer index among them", path, line_no);
    task.items.push_back(std::move(item));
  });
  JET_CHECK(!task.items.empty(), "{}: no items", path);
  return task;
}

}  // namespace jet::eval
