// Per-slot sampling: RowSampling draws follow a float64 reference of softmax / top-k / top-p over many
// positions, greedy / top-k 1 / tiny top-p rows are argmax, the hashed noise is uniform and depends
// only on (key, position, token); in the engine, sequences with their own settings (greedy and seeded
// sampled ones mixed) decode the same tokens batched as alone, and equal prompts of one generate_batch
// draw different continuations.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "../model/tiny_model.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/sampler.h"

namespace {

using jet::engine::RowSampling;
using jet::engine::SamplingParams;

RowSampling rows_of(const std::vector<SamplingParams>& ps) {
  std::vector<float> t, p;
  std::vector<int64_t> k, key;
  for (const auto& s : ps) {
    t.push_back(static_cast<float>(s.temperature));
    p.push_back(static_cast<float>(s.top_p));
    k.push_back(s.top_k);
    key.push_back(jet::engine::seed_key(s.seed));
  }
  return {at::tensor(t), at::tensor(k), at::tensor(p), at::tensor(key)};
}

// The distribution sampling should follow, in float64: softmax(logits / t), the top k, the nucleus.
std::vector<double> reference(const std::vector<double>& logits, const SamplingParams& s) {
  const size_t V = logits.size();
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  std::vector<double> p(V, 0.0);
  const size_t k = s.top_k > 0 ? std::min<size_t>(s.top_k, V) : V;
  double z = 0;
  for (size_t r = 0; r < k; ++r) z += std::exp((logits[order[r]] - logits[order[0]]) / s.temperature);
  double before = 0;
  for (size_t r = 0; r < k; ++r) {
    const double q = std::exp((logits[order[r]] - logits[order[0]]) / s.temperature) / z;
    if (s.top_p < 1 && before >= s.top_p) break;
    p[order[r]] = q;
    before += q;
  }
  const double kept = std::accumulate(p.begin(), p.end(), 0.0);
  for (auto& x : p) x /= kept;
  return p;
}

TEST(RowSampling, FollowsTheReferenceDistribution) {
  const std::vector<double> logits = {0.3, 1.9, -0.7, 1.2, 0.0, 2.3, -1.5};
  std::vector<SamplingParams> ps(4);
  ps[0].temperature = 1.0;
  ps[1].temperature = 0.7, ps[1].top_k = 3;
  ps[2].temperature = 1.3, ps[2].top_p = 0.8;
  ps[3].temperature = 1.1, ps[3].top_k = 5, ps[3].top_p = 0.9;
  for (size_t i = 0; i < ps.size(); ++i) ps[i].seed = 100 + i;
  const RowSampling rows = rows_of(ps);
  const int64_t N = 6000, V = static_cast<int64_t>(logits.size());
  at::Tensor l = at::tensor(logits).to(at::kFloat).unsqueeze(0).expand({4, V}).contiguous();
  std::vector<std::vector<double>> freq(4, std::vector<double>(V, 0.0));
  for (int64_t pos = 0; pos < N; ++pos) {
    at::Tensor ids = jet::engine::sample_rows(l, rows, at::full({4}, pos, at::kLong));
    for (int64_t r = 0; r < 4; ++r) freq[r][ids[r].item<int64_t>()] += 1.0 / N;
  }
  for (size_t r = 0; r < ps.size(); ++r) {
    const auto want = reference(logits, ps[r]);
    for (int64_t v = 0; v < V; ++v) {
      if (want[v] == 0) {
        EXPECT_EQ(freq[r][v], 0.0) << "row " << r << " token " << v << " is filtered out";
      }
      EXPECT_NEAR(freq[r][v], want[v], 0.025) << "row " << r << " token " << v;
    }
  }
}

TEST(RowSampling, GreedyRowsAreArgmax) {
  at::Tensor l = at::randn({5, 33}, at::TensorOptions().dtype(at::kFloat));
  std::vector<SamplingParams> ps(5);
  ps[0].temperature = 0;
  ps[1].temperature = 2.0, ps[1].top_k = 1;
  ps[2].temperature = 2.0, ps[2].top_p = 1e-6;
  ps[3].temperature = 0, ps[3].top_k = 7;
  ps[4].temperature = 1e-4;  // far below the logit gaps
  const RowSampling rows = rows_of(ps);
  for (int64_t pos : {0, 7, 1000}) {
    at::Tensor ids = jet::engine::sample_rows(l, rows, at::full({5}, pos, at::kLong));
    EXPECT_TRUE(at::equal(ids, l.argmax(-1))) << "position " << pos;
  }
}

TEST(RowSampling, HashedNoise) {
  at::Tensor key = at::tensor(std::vector<int64_t>{jet::engine::seed_key(1), jet::engine::seed_key(2)});
  at::Tensor pos = at::tensor(std::vector<int64_t>{5, 5});
  const int64_t V = 50000;
  at::Tensor u = jet::engine::hash_uniform(key, pos, V);
  ASSERT_EQ(u.sizes(), (std::vector<int64_t>{2, V}));
  EXPECT_GT(u.min().item<float>(), 0.0f);
  EXPECT_LT(u.max().item<float>(), 1.0f);
  EXPECT_NEAR(u.mean().item<float>(), 0.5, 0.01);
  EXPECT_NEAR(u.var().item<float>(), 1.0 / 12, 0.003);
  // Neighbouring tokens, rows and positions are uncorrelated.
  auto corr = [](const at::Tensor& a, const at::Tensor& b) {
    return at::corrcoef(at::stack({a, b})).select(0, 0).select(0, 1).item<float>();
  };
  EXPECT_LT(std::abs(corr(u[0].narrow(0, 0, V - 1), u[0].narrow(0, 1, V - 1))), 0.02);
  EXPECT_LT(std::abs(corr(u[0], u[1])), 0.02);
  at::Tensor next = jet::engine::hash_uniform(key.narrow(0, 0, 1), at::tensor(std::vector<int64_t>{6}), V);
  EXPECT_LT(std::abs(corr(u[0], next[0])), 0.02);
  // A row's noise depends on its key and position only, not on the other rows.
  at::Tensor alone = jet::engine::hash_uniform(key.narrow(0, 1, 1), pos.narrow(0, 1, 1), V);
  EXPECT_TRUE(at::equal(alone[0], u[1]));
  EXPECT_NE(jet::engine::seed_key(1), jet::engine::seed_key(2));
}

TEST(EngineSampling, PerSlotSettingsBatchedEqualAlone) {
  auto config = jet::model::ModelConfig::from_json(jet::test::tiny_config_json(), "tiny");
  jet::model::CausalLM lm(config);
  lm.load_weights(jet::test::random_weights(config, 11), at::kFloat, at::kCPU, "tiny");
  std::vector<SamplingParams> ps(3);
  ps[0].temperature = 1.2, ps[0].top_k = 30, ps[0].seed = 5;
  ps[1].temperature = 0;
  ps[2].temperature = 0.9, ps[2].top_p = 0.8, ps[2].seed = 6;
  const std::vector<std::vector<int32_t>> prompts = {{3, 9, 27, 81}, {5, 1, 4}, {7, 7, 2, 50, 11, 8}};
  const int64_t n = 12;
  auto run = [&](const std::vector<size_t>& which) {
    jet::engine::EngineOptions eo;
    eo.max_batch = static_cast<int64_t>(which.size());
    eo.max_len = 32;
    jet::engine::Engine e(lm, eo, SamplingParams{});
    std::vector<std::vector<int32_t>> out(which.size());
    for (size_t i = 0; i < which.size(); ++i) out[i].push_back(e.prefill(e.alloc(), prompts[which[i]], ps[which[i]]));
    for (int64_t t = 1; t < n; ++t) {
      const auto next = e.step();
      for (size_t i = 0; i < which.size(); ++i) out[i].push_back(next[i]);
    }
    return out;
  };
  const auto batched = run({0, 1, 2});
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(batched[i], run({i})[0]) << "sequence " << i;
  const auto reordered = run({2, 0});  // other slots, other neighbours
  EXPECT_EQ(reordered[0], batched[2]);
  EXPECT_EQ(reordered[1], batched[0]);
  EXPECT_NE(batched[0], batched[2]);
}

TEST(EngineSampling, EqualPromptsInABatchDrawApart) {
  auto config = jet::model::ModelConfig::from_json(jet::test::tiny_config_json(), "tiny");
  jet::model::CausalLM lm(config);
  lm.load_weights(jet::test::random_weights(config, 12), at::kFloat, at::kCPU, "tiny");
  jet::engine::GenerateOptions g;
  g.max_new_tokens = 16;
  g.sampling.temperature = 1.5;
  g.sampling.seed = 4;
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42};
  const auto batch = jet::engine::generate_batch(lm, {prompt, prompt, prompt}, g);
  EXPECT_NE(batch[0].tokens, batch[1].tokens);
  EXPECT_NE(batch[1].tokens, batch[2].tokens);
  EXPECT_EQ(batch[0].tokens, jet::engine::generate(lm, prompt, g).tokens);  // prompt 0 samples with the seed
}

}  // namespace
