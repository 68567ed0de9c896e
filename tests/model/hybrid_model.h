// A tiny hybrid config with every layer type (attn, swa and the six linear blocks), for the hybrid
// model tests on CPU (tests/model) and CUDA (tests/gpu). Linear head widths are 16 so that the CUDA
// decode kernels (K ∈ {16, 32, ...}) take every block.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::test {

inline const std::vector<std::string> kAllLayerTypes = {"attn", "jet", "gdn", "deltanet", "swa",
                                                        "gla",  "retnet", "mamba2"};

// initializer_range 0.2 (not 0.02) so that every mixer moves the logits well beyond rounding.
inline nlohmann::json hybrid_all_types_json(int64_t window = 4) {
  nlohmann::json j = {{"model_type", "jet_nemotron"}, {"architectures", {"JetNemotronForCausalLM"}},
                      {"vocab_size", 97},  {"hidden_size", 32},  {"intermediate_size", 48},
                      {"num_hidden_layers", kAllLayerTypes.size()}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                      {"tie_word_embeddings", true}, {"bos_token_id", 1}, {"eos_token_id", 2},
                      {"initializer_range", 0.2}, {"max_position_embeddings", 256}};
  j["layer_types"] = kAllLayerTypes;
  j["efficient_attention_config"] = {
      {"swa", {{"window_size", window}}},
      {"jet", {{"num_heads", 2}, {"head_dim", 16}, {"expand_v", 1.5}, {"conv_size", 4},
               {"dconv_generator_reduction", 4}, {"norm_eps", "1e-5"}, {"mode", "chunk"}}},
      {"gdn", {{"num_heads", 2}, {"head_dim", 16}, {"expand_v", 1.0}, {"conv_size", 4}}},
      {"deltanet", {{"num_heads", 2}, {"expand_k", 1.0}, {"expand_v", 1.0}, {"conv_size", 3}, {"use_gate", true}}},
      {"gla", {{"num_heads", 2}, {"expand_k", 1.0}, {"expand_v", 1.0}, {"gate_low_rank_dim", 4}}},
      {"retnet", {{"num_heads", 2}, {"expand_k", 1.0}, {"expand_v", 1.0}}},
      {"mamba2", {{"head_dim", 8}, {"state_size", 16}, {"expand", 2}, {"n_groups", 1}, {"conv_kernel", 4}}}};
  return j;
}

// hybrid_all_types_json() without the layers of one type (the engine cannot decode retnet yet).
inline nlohmann::json hybrid_json_without(const std::string& type) {
  nlohmann::json j = hybrid_all_types_json();
  std::vector<std::string> types;
  for (const auto& t : kAllLayerTypes)
    if (t != type) types.push_back(t);
  j["layer_types"] = types;
  j["num_hidden_layers"] = types.size();
  return j;
}

}  // namespace jet::test
