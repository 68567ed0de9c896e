// A hybrid CausalLM (layer_types mixing attention, sliding-window attention, JetBlock and Gated
// DeltaNet layers): the mixers slot in through make_mixer, their parameters get official names, and prefill + one-token
// decode through the cache equals the full forward.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "model/causal_lm.h"
#include "tiny_model.h"

namespace {

jet::model::ModelConfig hybrid_config() {
  auto j = jet::test::tiny_config_json();
  j["model_type"] = "jet_nemotron";
  j["layer_types"] = {"attn", "jet", "gdn", "swa"};
  j["efficient_attention_config"] = {
      {"jet", {{"num_heads", 2}, {"head_dim", 8}, {"expand_v", 2.0}, {"conv_size", 4},
               {"dconv_generator_reduction", 4}, {"norm_eps", "1e-5"}, {"mode", "chunk"}}},
      {"gdn", {{"num_heads", 2}, {"head_dim", 8}, {"expand_v", 1.0}, {"conv_size", 4}}},
      {"swa", {{"window_size", 4}}}};
  return jet::model::ModelConfig::from_json(j, "hybrid");
}

TEST(Hybrid, PrefillThenDecodeEqualsFullForward) {
  const auto config = hybrid_config();
  jet::model::CausalLM lm(config);
  bool jet_q = false, fp32_kept = false;
  for (const auto& p : lm.params()) {
    jet_q |= p.name == "model.layers.1.self_attn.q_proj.weight";
    fp32_kept |= p.name == "model.layers.2.self_attn.A_log" && p.keep_fp32;
  }
  EXPECT_TRUE(jet_q);
  EXPECT_TRUE(fp32_kept);
  EXPECT_GT(lm.cache_bytes_fixed(2), 2 * 2 * 4 * 8 * 2 /*the swa ring*/);
  EXPECT_EQ(lm.cache_bytes_per_token(4), 1 /*attn layer*/ * 2 * 2 * 8 * 4);

  auto weights = jet::test::random_weights(config, 9);
  for (auto& [name, t] : weights)  // keep the linear blocks' decays and gates in a tame range
    if (name.find("layers.1.") != std::string::npos || name.find("layers.2.") != std::string::npos) t.mul_(0.5);
  lm.load_weights(weights, at::kFloat, at::kCPU, "hybrid");
  at::InferenceMode guard;
  at::manual_seed(2);
  at::Tensor ids = at::randint(0, config.vocab_size, {2, 21}, at::kLong);
  at::Tensor full = lm.forward(ids);
  ASSERT_TRUE(at::isfinite(full).all().item<bool>());
  auto cache = lm.new_cache(2, 21);
  std::vector<at::Tensor> parts{lm.forward(ids.narrow(1, 0, 9), 0, &cache)};
  parts.push_back(lm.forward(ids.narrow(1, 9, 4), 9, &cache));
  for (int64_t t = 13; t < 21; ++t) parts.push_back(lm.forward(ids.narrow(1, t, 1), t, &cache));
  const float tol = 1e-4f * full.abs().max().item<float>();
  EXPECT_LT((at::cat(parts, 1) - full).abs().max().item<float>(), tol);
}

}  // namespace
