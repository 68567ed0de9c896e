// Tiny random models for the model and engine tests: a small Llama-style config, a hybrid of it with
// every kind of mixer state (attn, jet, gdn, swa), and seeded random weights for every parameter.
#pragma once
#include <ATen/ATen.h>
#include <fmt/format.h>

#include "model/causal_lm.h"

namespace jet::test {

inline nlohmann::json tiny_config_json() {
  return {{"model_type", "llama"}, {"vocab_size", 97},      {"hidden_size", 32},
          {"intermediate_size", 48}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5},  {"rope_theta", 10000.0},
          {"tie_word_embeddings", false}, {"bos_token_id", 1}, {"eos_token_id", 2}};
}

inline io::TensorMap random_weights(const model::ModelConfig& c, uint64_t seed) {
  model::CausalLM lm(c);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  io::TensorMap w;
  for (const auto& p : lm.params()) {
    at::Tensor t = at::empty(p.shape, at::kFloat);
    t.normal_(0.0, 0.3, gen);
    if (p.name.find("norm") != std::string::npos) t.add_(1.0);
    w[p.name] = t;
  }
  return w;
}

// tiny_config_json() with layer_types attn, jet, gdn, swa (window 4).
inline nlohmann::json tiny_hybrid_config_json() {
  auto j = tiny_config_json();
  j["model_type"] = "jet_nemotron";
  j["layer_types"] = {"attn", "jet", "gdn", "swa"};
  j["efficient_attention_config"] = {
      {"jet", {{"num_heads", 2}, {"head_dim", 8}, {"expand_v", 2.0}, {"conv_size", 4},
               {"dconv_generator_reduction", 4}, {"norm_eps", "1e-5"}, {"mode", "chunk"}}},
      {"gdn", {{"num_heads", 2}, {"head_dim", 8}, {"expand_v", 1.0}, {"conv_size", 4}}},
      {"swa", {{"window_size", 4}}}};
  return j;
}

// random_weights() with the linear layers' weights halved: keeps their decays and gates in a tame range.
inline io::TensorMap tame_random_weights(const model::ModelConfig& c, uint64_t seed) {
  io::TensorMap w = random_weights(c, seed);
  for (size_t i = 0; i < c.layer_types.size(); ++i) {
    if (c.layer_types[i] == "attn" || c.layer_types[i] == "swa") continue;
    const std::string prefix = fmt::format("model.layers.{}.", i);
    for (auto& [name, t] : w)
      if (name.compare(0, prefix.size(), prefix) == 0) t.mul_(0.5);
  }
  return w;
}

}  // namespace jet::test
