// Tiny random models for the model tests: a small Llama-style config and seeded random weights for
// every parameter it declares.
#pragma once
#include <ATen/ATen.h>

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

}  // namespace jet::test
