// Sampler: greedy = argmax, seeded reproducibility, top-k / top-p keep the right tokens.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <set>

#include "core/check.h"
#include "engine/sampler.h"

using jet::engine::filter_logits;
using jet::engine::Sampler;
using jet::engine::SamplingParams;

namespace {

std::set<int64_t> kept(const at::Tensor& filtered) {
  std::set<int64_t> s;
  for (int64_t i = 0; i < filtered.size(0); ++i)
    if (std::isfinite(filtered[i].item<float>())) s.insert(i);
  return s;
}

TEST(Sampler, GreedyIsArgmax) {
  at::manual_seed(1);
  for (int i = 0; i < 20; ++i) {
    at::Tensor logits = at::randn({500});
    SamplingParams p;
    p.temperature = 0;
    EXPECT_EQ(Sampler(p).sample(logits), logits.argmax().item<int64_t>());
  }
}

TEST(Sampler, SeededReproducible) {
  at::Tensor logits = at::zeros({1000});  // uniform: every draw is up to the generator
  auto draw = [&](uint64_t seed) {
    SamplingParams p;
    p.seed = seed;
    Sampler s(p);
    std::vector<int64_t> out;
    for (int i = 0; i < 32; ++i) out.push_back(s.sample(logits));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, TopKKeepsTheKLargest) {
  at::Tensor logits = at::tensor({0.5f, 3.0f, -1.0f, 2.0f, 2.5f, 0.0f});
  SamplingParams p;
  p.top_k = 3;
  EXPECT_EQ(kept(filter_logits(logits, p)), (std::set<int64_t>{1, 3, 4}));
  p.top_k = 1;
  Sampler s(p);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampler, TopPKeepsTheNucleus) {
  // probabilities 0.5, 0.25, 0.15, 0.1 (in the order 2, 0, 3, 1)
  at::Tensor logits = at::log(at::tensor({0.25f, 0.1f, 0.5f, 0.15f}));
  SamplingParams p;
  p.top_p = 0.45;  // the top token alone reaches 0.45
  EXPECT_EQ(kept(filter_logits(logits, p)), (std::set<int64_t>{2}));
  p.top_p = 0.7;  // 0.5 + 0.25 reaches 0.7
  EXPECT_EQ(kept(filter_logits(logits, p)), (std::set<int64_t>{0, 2}));
  p.top_p = 0.8;  // 0.75 < 0.8: add 0.15
  EXPECT_EQ(kept(filter_logits(logits, p)), (std::set<int64_t>{0, 2, 3}));
  p.top_p = 1.0;
  EXPECT_EQ(kept(filter_logits(logits, p)).size(), 4u);
  // Combined with top-k, both filters apply.
  p.top_p = 0.8;
  p.top_k = 2;
  EXPECT_EQ(kept(filter_logits(logits, p)), (std::set<int64_t>{0, 2}));
  // Draws only ever come from the kept set, and cover it.
  p.top_k = 0;
  Sampler s(p);
  std::set<int64_t> seen;
  for (int i = 0; i < 300; ++i) seen.insert(s.sample(logits));
  EXPECT_EQ(seen, (std::set<int64_t>{0, 2, 3}));
}

TEST(Sampler, BadParams) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, jet::Error);
  p = SamplingParams{};
  p.temperature = -1;
  EXPECT_THROW(Sampler{p}, jet::Error);
}

}  // namespace
