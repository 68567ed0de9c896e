// Evaluation on a tiny random Llama: perplexity against a float64 hand computation and invariant to the
// batch size; passkey tasks (lengths, key, answers, determinism) on the teacher's tokenizer and
// passkey_accuracy against greedy decoding by hand; mc_scores against separate unpadded forwards; the
// holdout-cloze-4 maker.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <set>

#include "../data/token_dir.h"
#include "../error_of.h"
#include "../model/tiny_model.h"
#include "data/tokens.h"
#include "eval/eval.h"
#include "text/load.h"

namespace jet::eval {
namespace {

using test::error_of;

const char* kTeacher = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

std::unique_ptr<model::CausalLM> tiny_lm(int64_t max_pos = 0) {
  auto j = test::tiny_config_json();
  if (max_pos) j["max_position_embeddings"] = max_pos;
  const auto c = model::ModelConfig::from_json(j, "tiny");
  auto lm = std::make_unique<model::CausalLM>(c);
  lm->load_weights(test::random_weights(c, 5), at::kFloat, at::kCPU, "tiny");
  return lm;
}

// log p(ids[t] | ids[<t]) for t = 1..T-1 of one row, in float64 from a forward of that row alone.
std::vector<double> token_logprobs(const model::CausalLM& lm, const std::vector<int64_t>& ids) {
  at::NoGradGuard g;
  const auto logits = lm.forward(at::tensor(ids, at::kLong).view({1, -1}))[0].to(at::kDouble);
  const auto lp = at::log_softmax(logits, -1);
  std::vector<double> out;
  for (size_t t = 1; t < ids.size(); ++t) out.push_back(lp[t - 1][ids[t]].item<double>());
  return out;
}

TEST(Eval, PerplexityMatchesHandComputationAndBatching) {
  const auto lm = tiny_lm();
  at::manual_seed(3);
  const auto w = at::randint(0, 97, {5, 11}, at::kLong);
  double sum = 0;
  for (int64_t r = 0; r < 5; ++r) {
    std::vector<int64_t> row(w[r].data_ptr<int64_t>(), w[r].data_ptr<int64_t>() + 11);
    for (double lp : token_logprobs(*lm, row)) sum -= lp;
  }
  const double want = sum / 50;
  std::vector<int64_t> progress;
  for (int64_t batch : {1, 2, 3, 5, 8}) {
    progress.clear();
    const auto p = perplexity(*lm, w, batch, [&](int64_t d) { progress.push_back(d); });
    EXPECT_EQ(p.tokens, 50);
    EXPECT_NEAR(p.nll, want, 1e-5) << "batch " << batch;
    EXPECT_NEAR(p.ppl, std::exp(want), 1e-4 * std::exp(want));
    EXPECT_EQ(progress.back(), 5);
  }
  EXPECT_GT(want, 1.0);  // a random model: far from zero loss
  EXPECT_NE(error_of([&] { perplexity(*lm, w.slice(1, 0, 1)); }).find("T >= 2"), std::string::npos);
  EXPECT_NE(error_of([&] { perplexity(*lm, w.to(at::kInt)); }).find("int64"), std::string::npos);
}

TEST(Eval, PasskeyTaskProperties) {
  const auto tok = text::load_tokenizer(kTeacher);
  const int64_t unit = passkey_filler_tokens(tok);
  EXPECT_GT(unit, 10);
  for (int64_t length : {128, 300, 1000}) {
    const auto task = make_passkey(tok, length, 6, 42);
    ASSERT_EQ(task.prompts.size(), 6u);
    EXPECT_EQ(task.length, length);
    std::set<int32_t> keys;
    for (size_t i = 0; i < 6; ++i) {
      const int64_t total = static_cast<int64_t>(task.prompts[i].size() + task.answers[i].size());
      EXPECT_LE(total, length);
      EXPECT_GT(total, length - unit) << "length " << length;
      const int32_t key = task.keys[i];
      EXPECT_GE(key, 10000);
      EXPECT_LE(key, 99999);
      keys.insert(key);
      const std::string prompt = tok.decode(task.prompts[i]);
      EXPECT_NE(prompt.find(fmt::format("The pass key is {0}. Remember it. {0} is the pass key.", key)), std::string::npos);
      EXPECT_EQ(prompt.rfind(std::to_string(key)) - prompt.find(std::to_string(key)), 20u) << "only in the key sentence";
      EXPECT_EQ(prompt.substr(prompt.size() - 37), "What is the pass key? The pass key is");
      EXPECT_EQ(tok.decode(task.answers[i]), " " + std::to_string(key));
      EXPECT_GE(task.depths[i], 0.0);
      EXPECT_LE(task.depths[i], 1.0);
    }
    EXPECT_GT(keys.size(), 4u);
  }
  const auto a = make_passkey(tok, 400, 8, 7), b = make_passkey(tok, 400, 8, 7), c = make_passkey(tok, 400, 8, 8);
  EXPECT_EQ(a.prompts, b.prompts);
  EXPECT_EQ(a.answers, b.answers);
  EXPECT_NE(a.keys, c.keys);
  EXPECT_NE(std::set<double>(a.depths.begin(), a.depths.end()).size(), 1u);  // the depth varies
  EXPECT_NE(error_of([&] { make_passkey(tok, 40, 1, 0); }).find("too short"), std::string::npos);
}

TEST(Eval, PasskeyAccuracyIsGreedyDecodingByHand) {
  const auto lm = tiny_lm();
  at::NoGradGuard g;
  PasskeyTask task;
  at::manual_seed(9);
  // Answers: the model's own greedy continuation (right) for even samples, a changed token for odd ones.
  for (int i = 0; i < 6; ++i) {
    const auto p = at::randint(3, 97, {7 + i}, at::kLong);
    std::vector<int32_t> prompt(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel());
    std::vector<int64_t> seq(prompt.begin(), prompt.end());
    std::vector<int32_t> answer;
    for (int j = 0; j < 3; ++j) {
      const auto next = lm->forward(at::tensor(seq, at::kLong).view({1, -1}))[0][-1].argmax().item<int64_t>();
      answer.push_back(static_cast<int32_t>(next));
      seq.push_back(next);
    }
    if (i % 2) answer[i % 3] = (answer[i % 3] + 1) % 97;
    task.prompts.push_back(prompt);
    task.answers.push_back(answer);
  }
  EXPECT_DOUBLE_EQ(passkey_accuracy(*lm, task), 0.5);
  double want = 0;
  for (size_t i = 0; i < task.prompts.size(); ++i) {
    std::vector<int64_t> ids(task.prompts[i].begin(), task.prompts[i].end());
    ids.insert(ids.end(), task.answers[i].begin(), task.answers[i].end());
    const auto lp = token_logprobs(*lm, ids);
    for (size_t j = 0; j < task.answers[i].size(); ++j) want += lp[task.prompts[i].size() - 1 + j];
  }
  const auto score = passkey_score(*lm, task);
  EXPECT_DOUBLE_EQ(score.accuracy, 0.5);
  EXPECT_NEAR(score.answer_logprob, want / 6, 1e-5);
}

TEST(Eval, McScoresMatchSeparateForwards) {
  const auto lm = tiny_lm();
  McTask task{"hand", {}};
  at::manual_seed(4);
  auto rnd = [](int64_t n) {
    const auto t = at::randint(0, 97, {n}, at::kLong);
    return std::vector<int32_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  };
  for (int i = 0; i < 7; ++i) task.items.push_back({rnd(3 + i), {rnd(1), rnd(4), rnd(2 + i % 3), rnd(5)}, i % 4});
  const auto scores = mc_scores(*lm, task);
  int right = 0;
  for (size_t k = 0; k < task.items.size(); ++k) {
    const auto& it = task.items[k];
    int best = 0;
    std::vector<double> want;
    for (const auto& c : it.choices) {
      std::vector<int64_t> ids(it.context.begin(), it.context.end());
      ids.insert(ids.end(), c.begin(), c.end());
      const auto lp = token_logprobs(*lm, ids);
      double s = 0;
      for (size_t j = 0; j < c.size(); ++j) s += lp[it.context.size() - 1 + j];
      want.push_back(s / c.size());
      if (want.back() > want[best]) best = static_cast<int>(want.size()) - 1;
    }
    for (size_t c = 0; c < want.size(); ++c) EXPECT_NEAR(scores[k][c], want[c], 1e-5) << k << " " << c;
    right += best == it.answer;
  }
  EXPECT_DOUBLE_EQ(mc_accuracy(*lm, task), right / 7.0);
  EXPECT_DOUBLE_EQ(mc_accuracy(scores, task), right / 7.0);
  // Ties go to the first choice.
  McTask tie{"tie", {{{1, 2}, {{5}, {5}}, 1}}};
  EXPECT_DOUBLE_EQ(mc_accuracy(*lm, tie), 0.0);
  EXPECT_NE(error_of([&] { mc_accuracy(*lm, McTask{"bad", {{{1}, {{2}, {3}}, 2}}}); }).find("outside the 2 choices"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mc_accuracy(*lm, McTask{"bad", {{{1}, {{2}, {300}}, 0}}}); }).find("vocabulary"),
            std::string::npos);
}

TEST(Eval, HoldoutClozeFromPassagesWithoutBoundaries) {
  test::TempDir t;
  // Held-out tokens 3.. (unique, so a choice tells where it came from), EOS (0) every 200 tokens.
  std::vector<int32_t> held;
  for (int32_t i = 0; i < 2000; ++i) held.push_back(i % 200 == 199 ? 0 : 3 + i);
  test::make_token_dir(t.path, {{1, 2, 3}}, 4000, {std::vector<int32_t>(held.begin(), held.begin() + 777),
                                                   std::vector<int32_t>(held.begin() + 777, held.end())});
  const auto set = data::TokenSet::open(t.path, "holdout");
  const auto task = make_holdout_cloze(set, 12, 1, 30, 10);
  EXPECT_EQ(task.name, "holdout-cloze-4");
  ASSERT_EQ(task.items.size(), 12u);
  std::set<int32_t> answers;
  for (const auto& it : task.items) {
    ASSERT_EQ(it.context.size(), 30u);
    ASSERT_EQ(it.choices.size(), 4u);
    answers.insert(it.answer);
    const int32_t start = it.context[0] - 3;  // the passage's offset in the split
    EXPECT_EQ(start % 40, 0);
    for (int j = 0; j < 30; ++j) EXPECT_EQ(it.context[j], held[start + j]);
    std::set<int32_t> firsts;
    for (size_t c = 0; c < 4; ++c) {
      ASSERT_EQ(it.choices[c].size(), 10u);
      for (int32_t x : it.choices[c]) EXPECT_NE(x, 0) << "a passage with a document boundary";
      firsts.insert(it.choices[c][0]);
      EXPECT_EQ(it.choices[c][0] == held[start + 30], c == static_cast<size_t>(it.answer));
    }
    EXPECT_EQ(firsts.size(), 4u);  // four different passages
  }
  EXPECT_GT(answers.size(), 2u);
  const auto again = make_holdout_cloze(set, 12, 1, 30, 10);
  for (size_t k = 0; k < 12; ++k) EXPECT_EQ(again.items[k].choices, task.items[k].choices);
  EXPECT_NE(error_of([&] { make_holdout_cloze(set, 5, 1, 150, 60); }).find("needs >= 4"), std::string::npos);
}

}  // namespace
}  // namespace jet::eval
