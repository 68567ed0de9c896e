// perplexity, passkey and multiple choice on a CausalLM through forward() alone.
#include "eval/eval.h"

#include <ATen/ops/argmax.h>
#include <ATen/ops/full.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/hash.h"
#include "data/tokens.h"

namespace jet::eval {
namespace {

at::Tensor ids_tensor(const std::vector<int32_t>& ids, at::Device device) {
  std::vector<int64_t> v(ids.begin(), ids.end());
  return at::tensor(v, at::kLong).view({1, -1}).to(device);
}

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
  at::NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(task.prompts.size());
  for (int64_t i = 0; i < n; ++i) {
    JET_CHECK(!task.prompts[i].empty() && !task.answers[i].empty(), "passkey: sample {} has an empty prompt or answer", i);
    check_ids(lm, task.prompts[i], "passkey");
    check_ids(lm, task.answers[i], "passkey");
  }
  // Samples go through the model in batches of about kBatchTokens tokens, each row the prompt and the answer
  // but its last token, right-padded (a causal model's positions never see the padding after them); only the
  // rows that predict answer tokens reach the LM head, and each batch syncs with the host once.
  constexpr int64_t kBatchTokens = 16384;
  auto row_len = [&](int64_t i) { return static_cast<int64_t>(task.prompts[i].size() + task.answers[i].size() - 1); };
  int64_t right = 0;
  double logprob = 0;
  for (int64_t i0 = 0; i0 < n;) {
    int64_t i1 = i0 + 1, L = row_len(i0);
    while (i1 < n && (i1 - i0 + 1) * std::max(L, row_len(i1)) <= kBatchTokens) L = std::max(L, row_len(i1++));
    const int64_t b = i1 - i0;
    std::vector<int64_t> ids(static_cast<size_t>(b * L)), pick, target;
    for (int64_t r = 0; r < b; ++r) {
      const auto& prompt = task.prompts[i0 + r];
      const auto& answer = task.answers[i0 + r];
      std::vector<int32_t> row(prompt);
      row.insert(row.end(), answer.begin(), answer.end() - 1);
      row.resize(static_cast<size_t>(L), row.back());
      std::copy(row.begin(), row.end(), ids.begin() + r * L);
      const auto P = static_cast<int64_t>(prompt.size());
      for (size_t a = 0; a < answer.size(); ++a) {
        pick.push_back(r * L + P - 1 + static_cast<int64_t>(a));
        target.push_back(answer[a]);
      }
    }
    const at::Tensor h = lm.hidden(at::tensor(ids, at::kLong).view({b, L}));
    const at::Tensor rows = h.reshape({b * L, h.size(-1)}).index_select(0, at::tensor(pick, at::kLong).to(lm.device()));
    const at::Tensor logits = lm.lm_head(rows).to(at::kFloat);  // [answer tokens, V]
    const at::Tensor tgt = at::tensor(target, at::kLong).to(lm.device());
    const at::Tensor hit = logits.argmax(-1).eq(tgt).to(at::kCPU);
    const at::Tensor lp = at::log_softmax(logits, -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1).to(at::kDouble).to(at::kCPU);
    const bool* hp = hit.data_ptr<bool>();
    const double* lpp = lp.data_ptr<double>();
    for (int64_t r = 0, k = 0; r < b; ++r) {
      bool all = true;
      for (size_t a = 0; a < task.answers[i0 + r].size(); ++a, ++k) {
        all = all && hp[k];
        logprob += lpp[k];
      }
      right += all;
    }
    i0 = i1;
    if (on_progress) on_progress(i0);
  }
  return {static_cast<double>(right) / static_cast<double>(n), logprob / static_cast<double>(n)};
}

double passkey_accuracy(const model::CausalLM& lm, const PasskeyTask& task, const OnProgress& on_progress) {
  return passkey_score(lm, task, on_progress).accuracy;
}

std::vector<std::vector<double>> mc_scores(const model::CausalLM& lm, const McTask& task,
                                           const OnProgress& on_progress) {
  JET_CHECK(!task.items.empty(), "{}: no items", task.name);
  at::NoGradGuard no_grad;
  std::vector<std::vector<double>> scores;
  for (size_t k = 0; k < task.items.size(); ++k) {
    const McItem& item = task.items[k];
    JET_CHECK(!item.context.empty() && item.choices.size() >= 2, "{} item {}: needs a context and >= 2 choices",
              task.name, k);
    JET_CHECK(item.answer >= 0 && item.answer < static_cast<int32_t>(item.choices.size()),
              "{} item {}: answer {} outside the {} choices", task.name, k, item.answer, item.choices.size());
    check_ids(lm, item.context, task.name.c_str());
    const int64_t C = static_cast<int64_t>(item.context.size());
    int64_t longest = 0;
    for (const auto& c : item.choices) {
      JET_CHECK(!c.empty(), "{} item {}: an empty choice", task.name, k);
      check_ids(lm, c, task.name.c_str());
      longest = std::max<int64_t>(longest, static_cast<int64_t>(c.size()));
    }
    // Rows = context + choice, right-padded with the choice's last token: causal attention keeps the
    // padding out of every scored position.
    const auto R = static_cast<int64_t>(item.choices.size());
    at::Tensor ids = at::empty({R, C + longest}, at::kLong);
    for (int64_t r = 0; r < R; ++r) {
      std::vector<int64_t> row(item.context.begin(), item.context.end());
      row.insert(row.end(), item.choices[r].begin(), item.choices[r].end());
      row.resize(C + longest, row.back());
      ids[r].copy_(at::tensor(row, at::kLong));
    }
    const at::Tensor dev_ids = ids.to(lm.device());
    const at::Tensor logits = lm.forward(dev_ids);  // [R, C + longest, V]
    std::vector<double> s;
    for (int64_t r = 0; r < R; ++r) {
      const auto L = static_cast<int64_t>(item.choices[r].size());
      const at::Tensor lp = at::log_softmax(logits[r].slice(0, C - 1, C - 1 + L).to(at::kFloat), -1);  // [L, V]
      const at::Tensor target = dev_ids[r].slice(0, C, C + L).unsqueeze(-1);
      s.push_back(lp.gather(-1, target).to(at::kDouble).sum().item<double>() / static_cast<double>(L));
    }
    scores.push_back(std::move(s));
    if (on_progress) on_progress(static_cast<int64_t>(k) + 1);
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
  const std::string text = read_file(path);
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      JET_FAIL("{}:{}: not valid JSON", path, line_no);
    }
    JET_CHECK(j.is_object() && j.contains("context") && j["context"].is_string() && j.contains("choices") &&
                  j["choices"].is_array() && j.contains("answer") && j["answer"].is_number_integer(),
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
  }
  JET_CHECK(!task.items.empty(), "{}: no items", path);
  return task;
}

}  // namespace jet::eval
