// ModelConfig: the shape of a causal LM, read from an HF config.json (llama, qwen2 and the official
// jet_nemotron schema with layer_types + efficient_attention_config) or from GGUF metadata (llama /
// qwen2 arch keys). to_json() writes it back as a config.json that HF transformers loads.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::gguf {
class File;
}

namespace jet::model {

enum class RopeScaling { none, linear, llama3 };

struct RopeConfig {
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::none;
  double factor = 1.0;                         // linear and llama3
  double low_freq_factor = 1.0;                // llama3
  double high_freq_factor = 4.0;               // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

// efficient_attention_config["swa"]
struct SwaConfig {
  int64_t window_size = 0;
};

// efficient_attention_config["jet"] (JetBlock)
struct JetConfig {
  int64_t num_heads = 0, head_dim = 0;
  double expand_v = 1.0;
  int64_t conv_size = 4, dconv_generator_reduction = 8;
  double norm_eps = 1e-5;
};

struct ModelConfig {
  std::string model_type;    // llama | qwen2 | jet_nemotron
  std::string architecture;  // e.g. LlamaForCausalLM
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0;
  int64_t num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool qkv_bias = false;  // q/k/v projections have a bias (qwen2; llama attention_bias)
  bool o_bias = false;    // o_proj has a bias (llama attention_bias)
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;  // as given ("bfloat16", ...); empty if absent
  // One entry per layer: attn | swa | jet | gdn | ... ; default all "attn".
  std::vector<std::string> layer_types;
  std::optional<SwaConfig> swa;
  std::optional<JetConfig> jet;
  // The config.json this came from (empty for GGUF); to_json() keeps its unknown keys.
  nlohmann::json source;

  // Parses an HF config.json object; `where` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where);
  static ModelConfig from_file(const std::string& config_json_path);
  static ModelConfig from_gguf(const gguf::File& f);
  nlohmann::json to_json() const;

  // The checks every source (config.json, GGUF) passes, before anything is sized from the config:
  // sizes within sane architectural limits (kMax*), head divisibility (head_dim 0 = hidden_size /
  // num_attention_heads, which must divide), finite positive eps / rope values, token ids in the
  // vocabulary. Throws "<where>: <problem>". validate_sizes() is the first part (sizes and head_dim).
  void validate(const std::string& where);
  void validate_sizes(const std::string& where);
  static constexpr int64_t kMaxVocab = int64_t(1) << 24, kMaxHidden = int64_t(1) << 16,
                           kMaxIntermediate = int64_t(1) << 20, kMaxLayers = 1024, kMaxHeads = 1024,
                           kMaxHeadDim = 1024, kMaxPositions = int64_t(1) << 24;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

}  // namespace jet::model
