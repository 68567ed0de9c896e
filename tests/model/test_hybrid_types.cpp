// The hybrid model with every layer type (attn, swa, jet, gdn, deltanet, gla, retnet, mamba2) under the
// official random initialisation: prefill + decode equals one forward, sliding-window attention equals
// full attention over the window, and save → load in the official layout is bit-identical.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "core/fs.h"
#include "hybrid_model.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/random_init.h"

namespace {

namespace fs = std::filesystem;
using jet::model::CausalLM;
using jet::model::ModelConfig;

ModelConfig all_types(int64_t window = 4) {
  return ModelConfig::from_json(jet::test::hybrid_all_types_json(window), "hybrid");
}

float max_abs(const at::Tensor& t) { return t.abs().max().item<float>(); }

TEST(HybridTypes, PrefillThenDecodeEqualsFullForward) {
  const auto config = all_types();
  CausalLM lm(config);
  lm.load_weights(jet::model::random_weights(lm, 5), at::kFloat, at::kCPU, "hybrid");
  at::InferenceMode guard;
  at::manual_seed(3);
  const int64_t N = 11, M = 9;  // the swa window (4) is passed in both phases
  at::Tensor ids = at::randint(0, config.vocab_size, {2, N + M}, at::kLong);
  at::Tensor full = lm.forward(ids);
  ASSERT_TRUE(at::isfinite(full).all().item<bool>());
  auto cache = lm.new_cache(2, N + M);
  std::vector<at::Tensor> parts{lm.forward(ids.narrow(1, 0, N), 0, &cache)};
  for (int64_t t = N; t < N + M; ++t) parts.push_back(lm.forward(ids.narrow(1, t, 1), t, &cache));
  const at::Tensor inc = at::cat(parts, 1);
  EXPECT_LT(max_abs(inc - full), 1e-4f * max_abs(full));
  // Not a vacuous match: a token early in the sequence changes the last logits (through every mixer).
  at::Tensor ids2 = ids.clone();
  ids2.index_put_({0, 1}, (ids[0][1].item<int64_t>() + 1) % config.vocab_size);
  EXPECT_GT(max_abs(lm.forward(ids2).select(1, N + M - 1) - full.select(1, N + M - 1)), 1e-2f);
}

// A one-layer swa model at position t sees exactly tokens t−W+1..t: its logits equal the last logits
// of a one-layer full-attention model (same weights) run on that window alone (RoPE is relative).
TEST(HybridTypes, SlidingWindowEqualsFullAttentionOnTheWindow) {
  const int64_t W = 5, T = 14;
  auto j = jet::test::hybrid_all_types_json(W);
  j["num_hidden_layers"] = 1;
  j["layer_types"] = {"swa"};
  const ModelConfig swa_cfg = ModelConfig::from_json(j, "swa");
  j["layer_types"] = {"attn"};
  const ModelConfig attn_cfg = ModelConfig::from_json(j, "attn");
  CausalLM swa(swa_cfg), attn(attn_cfg);
  const auto w = jet::model::random_weights(swa, 8);
  swa.load_weights(w, at::kFloat, at::kCPU, "swa");
  attn.load_weights(w, at::kFloat, at::kCPU, "attn");
  at::InferenceMode guard;
  at::manual_seed(4);
  at::Tensor ids = at::randint(0, swa_cfg.vocab_size, {1, T}, at::kLong);
  const at::Tensor got = swa.forward(ids);
  const at::Tensor all = attn.forward(ids);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t lo = std::max<int64_t>(0, t - W + 1);
    const at::Tensor want = attn.forward(ids.narrow(1, lo, t + 1 - lo)).select(1, t - lo);
    EXPECT_LT(max_abs(got.select(1, t) - want), 1e-5f * max_abs(want)) << "position " << t;
  }
  // Beyond the window the two models really differ.
  EXPECT_GT(max_abs(got.select(1, T - 1) - all.select(1, T - 1)), 1e-3f);
  // The ring cache: prefill 3 then one token at a time past the window equals the full forward.
  auto cache = swa.new_cache(1, T);
  std::vector<at::Tensor> parts{swa.forward(ids.narrow(1, 0, 3), 0, &cache)};
  for (int64_t t = 3; t < T; ++t) parts.push_back(swa.forward(ids.narrow(1, t, 1), t, &cache));
  EXPECT_LT(max_abs(at::cat(parts, 1) - got), 1e-5f * max_abs(got));
}

TEST(HybridTypes, RandomInitFollowsTheOfficialRules) {
  const auto config = all_types();
  CausalLM lm(config);
  const auto a = jet::model::random_weights(lm, 1), b = jet::model::random_weights(lm, 1);
  const auto c = jet::model::random_weights(lm, 2);
  ASSERT_EQ(a.size(), lm.params().size());
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  const int threads = at::get_num_threads();  // the parallel draw does not depend on the thread count
  at::set_num_threads(threads == 1 ? 2 : 1);
  const auto d = jet::model::random_weights(lm, 1);
  at::set_num_threads(threads);
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, d.at(name))) << name;
  EXPECT_FALSE(at::equal(a.at("model.layers.1.self_attn.A_log"), c.at("model.layers.1.self_attn.A_log")));
  EXPECT_FALSE(at::equal(a.at("model.embed_tokens.weight"), c.at("model.embed_tokens.weight")));
  auto std_of = [&](const std::string& n) { return a.at(n).std().item<double>(); };
  EXPECT_NEAR(std_of("model.embed_tokens.weight"), 0.2, 0.02);
  EXPECT_NEAR(std_of("model.layers.3.mlp.up_proj.weight"), 0.2, 0.02);
  // PreTrainedModel._init_weights re-draws the kernel generator's Linears (the layer alone zeroes them).
  EXPECT_NEAR(std_of("model.layers.1.self_attn.dynamic_conv1d.kernel_generator.w2.weight"), 0.2, 0.02);
  EXPECT_EQ(max_abs(a.at("model.layers.1.self_attn.dynamic_conv1d.kernel_generator.w2.bias")), 0.0f);
  EXPECT_EQ(max_abs(a.at("model.layers.0.self_attn.q_proj.bias")), 0.0f);
  EXPECT_TRUE(at::equal(a.at("model.layers.6.post_attention_layernorm.weight"), at::ones({32})));
  EXPECT_TRUE(at::equal(a.at("model.layers.2.self_attn.o_norm.weight"), at::ones({16})));
  // Non-Linear parameters keep their layer's own init: A_log = log U(0, 16), convs within ±1/√W.
  const at::Tensor A = a.at("model.layers.2.self_attn.A_log").exp();
  EXPECT_TRUE((A > 0).all().item<bool>() && (A < 16).all().item<bool>());
  EXPECT_LE(max_abs(a.at("model.layers.3.self_attn.q_conv1d.weight")), 1.0f / std::sqrt(3.0f));
  EXPECT_TRUE(at::equal(a.at("model.layers.7.self_attn.D"), at::ones({8})));
  // bf16 storage keeps the fp32 parameters fp32.
  const auto h = jet::model::random_weights(lm, 1, at::kBFloat16);
  EXPECT_EQ(h.at("model.layers.1.self_attn.q_proj.weight").scalar_type(), at::kBFloat16);
  EXPECT_EQ(h.at("model.layers.1.self_attn.dt_bias").scalar_type(), at::kFloat);
}

TEST(HybridTypes, SaveLoadRoundTripIsBitIdentical) {
  const auto config = all_types();
  CausalLM lm(config);
  jet::model::Checkpoint ck;
  ck.config = config;
  ck.tensors = jet::model::random_weights(lm, 6, at::kBFloat16);
  const fs::path dir = fs::temp_directory_path() / fmt::format("jet_hybrid_{}", getpid());
  jet::remove_tree(dir.string());
  jet::model::save_hf_dir(dir.string(), ck, false);
  const auto back = jet::model::load_checkpoint(dir.string());
  jet::remove_tree(dir.string());
  EXPECT_EQ(back.config.layer_types, config.layer_types);
  EXPECT_EQ(back.config.to_json()["efficient_attention_config"], config.to_json()["efficient_attention_config"]);
  EXPECT_EQ(back.config.source["architectures"][0], "JetNemotronForCausalLM");
  ASSERT_EQ(back.tensors.size(), ck.tensors.size());
  for (const auto& [name, t] : ck.tensors) {
    const at::Tensor& u = back.tensors.at(name);
    EXPECT_EQ(u.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(u, t)) << name;
  }
  CausalLM a(config), b(back.config);
  a.load_weights(ck.tensors, at::kFloat, at::kCPU, "saved");
  b.load_weights(back.tensors, at::kFloat, at::kCPU, "loaded");
  at::InferenceMode guard;
  const at::Tensor ids = at::arange(3, 40, at::kLong).remainder(config.vocab_size).view({1, -1});
  EXPECT_TRUE(at::equal(a.forward(ids), b.forward(ids)));
}

}  // namespace
