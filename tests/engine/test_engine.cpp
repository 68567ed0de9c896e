// The generation engine on the CPU, for a tiny Llama and a tiny hybrid (every layer type the engine
// has: attn, swa window 4, jet, gdn, deltanet, gla, retnet, mamba2): greedy
// output equals a plain forward loop over the model's own cache; a batch of prompts of different
// lengths equals each prompt alone (also when a prompt waits for a freed slot); chunked prefill equals
// one-shot prefill; freed slots are reused cleanly; bad input fails with one-line errors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <memory>

#include "../error_of.h"
#include "../model/hybrid_model.h"
#include "../model/tiny_model.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "model/random_init.h"

namespace {

using jet::engine::Engine;
using jet::engine::EngineOptions;
using jet::engine::GenerateOptions;
using jet::engine::SamplingParams;

struct Tiny {
  jet::model::ModelConfig config;
  std::unique_ptr<jet::model::CausalLM> lm;
};

Tiny make(bool hybrid) {
  Tiny t{jet::model::ModelConfig::from_json(
      hybrid ? jet::test::hybrid_all_types_json() : jet::test::tiny_config_json(), "tiny"), nullptr};
  t.lm = std::make_unique<jet::model::CausalLM>(t.config);
  t.lm->load_weights(hybrid ? jet::model::random_weights(*t.lm, 11) : jet::test::random_weights(t.config, 11),
                     at::kFloat, at::kCPU, "tiny");
  return t;
}

std::vector<int32_t> prompt_of(int64_t n, int64_t seed, int64_t vocab) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((seed * 31 + i * 17 + i * i) % vocab));
  return p;
}

GenerateOptions greedy(int64_t n) {
  GenerateOptions g;
  g.max_new_tokens = n;
  g.sampling.temperature = 0;
  return g;
}

// Greedy decoding with CausalLM::forward and its own cache, one token at a time.
std::vector<int32_t> forward_loop(const jet::model::CausalLM& lm, const std::vector<int32_t>& prompt, int64_t n) {
  at::InferenceMode guard;
  const int64_t T = static_cast<int64_t>(prompt.size());
  auto cache = lm.new_cache(1, T + n);
  at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong).unsqueeze(0);
  at::Tensor logits = lm.forward(ids, 0, &cache);
  std::vector<int32_t> out;
  for (int64_t pos = T; static_cast<int64_t>(out.size()) < n; ++pos) {
    const int64_t next = logits[0][-1].argmax().item<int64_t>();
    out.push_back(static_cast<int32_t>(next));
    logits = lm.forward(at::full({1, 1}, next, at::kLong), pos, &cache);
  }
  return out;
}

class EngineTest : public ::testing::TestWithParam<bool> {};

TEST_P(EngineTest, GreedyEqualsForwardLoop) {
  Tiny t = make(GetParam());
  for (int64_t len : {1, 5, 13}) {
    const auto prompt = prompt_of(len, len, t.config.vocab_size);
    EXPECT_EQ(jet::engine::generate(*t.lm, prompt, greedy(12)).tokens, forward_loop(*t.lm, prompt, 12))
        << "prompt length " << len;
  }
}

TEST_P(EngineTest, BatchEqualsOneByOne) {
  Tiny t = make(GetParam());
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t len : {3, 11, 6, 9}) prompts.push_back(prompt_of(len, len + 1, t.config.vocab_size));
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(jet::engine::generate(*t.lm, p, greedy(10)).tokens);
  auto batched = jet::engine::generate_batch(*t.lm, prompts, greedy(10));
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(batched[i].tokens, alone[i]) << "prompt " << i;
  // Two slots for four prompts, and prompt 0 ends after 3 tokens: prompts 2 and 3 wait for free slots.
  auto opts = greedy(10);
  opts.max_batch = 2;
  int count0 = 0;
  auto waited = jet::engine::generate_batch(*t.lm, prompts, opts,
                                            [&](size_t i, int32_t) { return i != 0 || ++count0 < 3; });
  EXPECT_EQ(waited[0].tokens, std::vector<int32_t>(alone[0].begin(), alone[0].begin() + 3));
  for (size_t i = 1; i < prompts.size(); ++i) EXPECT_EQ(waited[i].tokens, alone[i]) << "prompt " << i;
}

TEST_P(EngineTest, ChunkedPrefillEqualsOneShot) {
  Tiny t = make(GetParam());
  const auto prompt = prompt_of(23, 4, t.config.vocab_size);
  std::vector<at::Tensor> logits;
  std::vector<std::vector<int32_t>> ids;
  for (int64_t chunk : {64, 5, 1}) {
    EngineOptions eo;
    eo.max_len = 40;
    eo.prefill_chunk = chunk;
    Engine e(*t.lm, eo, greedy(0).sampling);
    const int64_t s = e.alloc();
    std::vector<int32_t> out{e.prefill(s, prompt)};
    for (int i = 0; i < 6; ++i) out.push_back(e.step()[s]);
    logits.push_back(e.last_logits().clone());
    ids.push_back(out);
  }
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i], ids[0]);
    EXPECT_LT((logits[i] - logits[0]).abs().max().item<float>(), 1e-4);
  }
}

TEST_P(EngineTest, FreedSlotsAreReused) {
  Tiny t = make(GetParam());
  const auto a = prompt_of(9, 1, t.config.vocab_size), b = prompt_of(4, 2, t.config.vocab_size),
             c = prompt_of(6, 3, t.config.vocab_size);
  EngineOptions eo;
  eo.max_batch = 2;
  eo.max_len = 32;
  Engine e(*t.lm, eo, greedy(0).sampling);
  const int64_t sa = e.alloc(), sb = e.alloc();
  EXPECT_EQ(sa, 0);
  EXPECT_EQ(sb, 1);
  EXPECT_NE(jet::test::error_of([&] { e.alloc(); }).find("all 2 slots are in use"), std::string::npos);
  e.prefill(sa, a);
  e.prefill(sb, b);
  for (int i = 0; i < 5; ++i) e.step();
  EXPECT_EQ(e.length(sa), 9 + 5);
  e.free(sa);
  EXPECT_FALSE(e.live(sa));
  EXPECT_EQ(e.alloc(), 0);  // the lowest free slot, with a's state still in its rows
  // Logits too, right after the prefill (stale state can leave greedy ids unchanged, and decays away):
  // c alone in a fresh engine.
  EngineOptions one = eo;
  one.max_batch = 1;
  Engine fresh(*t.lm, one, greedy(0).sampling);
  fresh.prefill(fresh.alloc(), c);
  fresh.step();
  std::vector<int32_t> out{e.prefill(0, c)};
  std::vector<int32_t> out_b;
  for (int i = 0; i < 7; ++i) {
    auto next = e.step();
    if (i == 0) EXPECT_LT((e.last_logits()[0] - fresh.last_logits()[0]).abs().max().item<float>(), 1e-4);
    out.push_back(next[0]);
    out_b.push_back(next[1]);
  }
  EXPECT_EQ(out, jet::engine::generate(*t.lm, c, greedy(8)).tokens);
  const auto b_alone = jet::engine::generate(*t.lm, b, greedy(13)).tokens;
  EXPECT_EQ(out_b, std::vector<int32_t>(b_alone.begin() + 6, b_alone.end()));
  EXPECT_NE(jet::test::error_of([&] { e.free(5); }).find("slot 5 is not allocated"), std::string::npos);
}

// fill_synthetic (jet bench --synthetic-cache): the slot decodes from the given length, seeded and
// reproducible, and the other slots' sequences are untouched (the same tokens as next to a real prompt).
TEST_P(EngineTest, SyntheticCacheLeavesOtherSlotsAlone) {
  Tiny t = make(GetParam());
  const auto p = prompt_of(5, 3, t.config.vocab_size), q = prompt_of(9, 4, t.config.vocab_size);
  EngineOptions eo;
  eo.max_batch = 2;
  eo.max_len = 40;
  auto run = [&](bool synthetic, uint64_t seed, std::vector<int32_t>* slot0) {
    Engine e(*t.lm, eo, greedy(0).sampling);
    const int64_t a = e.alloc(), b = e.alloc();
    if (synthetic)
      e.fill_synthetic(a, 20, seed);
    else
      e.prefill(a, q);
    e.prefill(b, p);
    EXPECT_EQ(e.length(a), synthetic ? 20 : 9);
    std::vector<int32_t> out;
    for (int i = 0; i < 10; ++i) {
      const auto next = e.step();
      out.push_back(next[b]);
      if (slot0) slot0->push_back(next[a]);
    }
    EXPECT_EQ(e.length(a), (synthetic ? 20 : 9) + 10);
    return out;
  };
  std::vector<int32_t> s1, s1_again, s2;
  const auto with_prompt = run(false, 0, nullptr);
  EXPECT_EQ(run(true, 1, &s1), with_prompt);
  run(true, 1, &s1_again);
  run(true, 2, &s2);
  EXPECT_EQ(s1, s1_again);
  EXPECT_NE(s1, s2);
  Engine e(*t.lm, eo, greedy(0).sampling);
  using jet::test::error_of;
  EXPECT_NE(error_of([&] { e.fill_synthetic(0, 5, 1); }).find("slot 0 is not allocated"), std::string::npos);
  EXPECT_NE(error_of([&] { e.fill_synthetic(e.alloc(), 40, 1); }).find("leaves no room"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Models, EngineTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Hybrid" : "Llama"; });

TEST(Engine, SeededSamplingReproducible) {
  Tiny t = make(false);
  const auto prompt = prompt_of(5, 9, t.config.vocab_size);
  auto run = [&](uint64_t seed) {
    GenerateOptions g;
    g.max_new_tokens = 16;
    g.sampling.temperature = 1.5;
    g.sampling.top_k = 20;
    g.sampling.seed = seed;
    return jet::engine::generate(*t.lm, prompt, g).tokens;
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

TEST(Engine, BadInput) {
  Tiny t = make(false);
  using jet::test::error_of;
  auto has = [](const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; };
  EXPECT_TRUE(has(error_of([&] { jet::engine::generate(*t.lm, {}, greedy(4)); }), "prompt is empty"));
  EXPECT_TRUE(has(error_of([&] { jet::engine::generate(*t.lm, {1, 500}, greedy(4)); }),
                  "token id out of range [0, 97): 500"));
  EXPECT_TRUE(has(error_of([&] { jet::engine::generate_batch(*t.lm, {}, greedy(4)); }), "no prompts"));
  EXPECT_TRUE(has(error_of([&] { jet::engine::generate(*t.lm, {1}, greedy(-1)); }), "--max-new-tokens"));
  auto bad_p = greedy(4);
  bad_p.sampling.top_p = 0;
  EXPECT_TRUE(has(error_of([&] { jet::engine::generate(*t.lm, {1}, bad_p); }), "--top-p"));
  EngineOptions eo;
  eo.max_batch = 0;
  eo.max_len = 8;
  EXPECT_TRUE(has(error_of([&] { Engine e(*t.lm, eo, {}); }), "max batch must be >= 1"));
  eo.max_batch = 1;
  Engine e(*t.lm, eo, greedy(0).sampling);
  EXPECT_TRUE(has(error_of([&] { e.prefill(0, {1, 2}); }), "slot 0 is not allocated"));
  const int64_t s = e.alloc();
  EXPECT_TRUE(has(error_of([&] { e.prefill(s, prompt_of(8, 1, 97)); }), "leaves no room"));
  e.prefill(s, prompt_of(7, 1, 97));
  e.step();  // fills position 7, the last
  EXPECT_EQ(e.length(s), 8);
  EXPECT_TRUE(has(error_of([&] { e.step(); }), "slot 0 is full (8 tokens)"));
}

}  // namespace
