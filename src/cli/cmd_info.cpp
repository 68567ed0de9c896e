// `jet info --model PATH` (or --config config.json): architecture, parameter count, layer types and cache bytes per token, read
// from the config alone (no weights are loaded).
#include <cstdio>

#include <fmt/format.h>

#include "cli/command.h"
#include "core/check.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"

namespace {

// "jet x14, attn, jet x4" for a layer_types list.
std::string layer_runs(const std::vector<std::string>& types) {
  std::string out;
  for (size_t i = 0; i < types.size();) {
    size_t j = i;
    while (j < types.size() && types[j] == types[i]) ++j;
    out += fmt::format("{}{}{}", out.empty() ? "" : ", ", types[i],
                       j - i > 1 ? fmt::format(" x{}", j - i) : "");
    i = j;
  }
  return out;
}

const char* rope_name(jet::model::RopeScaling s) {
  switch (s) {
    case jet::model::RopeScaling::linear: return "linear";
    case jet::model::RopeScaling::llama3: return "llama3";
    default: return "none";
  }
}

void setup(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto config = std::make_shared<std::string>();
  auto* m = app.add_option("--model", *model, "GGUF file or HF directory");
  auto* cf = app.add_option("--config", *config, "a config.json alone (no checkpoint)");
  m->excludes(cf);
  app.callback([model, config] {
    JET_CHECK(!model->empty() || !config->empty(), "give --model or --config");
    jet::model::LoadOptions load;
    load.weights = false;
    load.tokenizer = false;
    const jet::model::ModelConfig c = config->empty() ? jet::model::load_checkpoint(*model, load).config
                                                      : jet::model::ModelConfig::from_file(*config);
    if (model->empty()) *model = *config;
    const jet::model::CausalLM lm(c);
    const int64_t n = lm.num_parameters();
    fmt::print("model:          {}\n", *model);
    fmt::print("architecture:   {} (model_type {})\n",
               c.architecture.empty() ? "-" : c.architecture, c.model_type);
    fmt::print("parameters:     {} ({:.1f}M)\n", n, n / 1e6);
    fmt::print("layers:         {} [{}]\n", c.num_hidden_layers, layer_runs(c.layer_types));
    fmt::print("hidden:         {}, intermediate {}, vocab {}, tied embeddings {}\n", c.hidden_size,
               c.intermediate_size, c.vocab_size, c.tie_word_embeddings ? "yes" : "no");
    fmt::print("attention:      {} heads, {} kv heads, head_dim {}, qkv bias {}\n",
               c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.qkv_bias ? "yes" : "no");
    fmt::print("rope:           theta {}, scaling {}\n", c.rope.theta, rope_name(c.rope.scaling));
    fmt::print("kv cache:       {} bytes/token fp32, {} bytes/token bf16\n",
               lm.cache_bytes_per_token(4), lm.cache_bytes_per_token(2));
    if (const int64_t fixed = lm.cache_bytes_fixed(2))
      fmt::print("linear states:  {} bytes/sequence (bf16 model)\n", fixed);
    fmt::print("max positions:  {}\n", c.max_position_embeddings);
  });
}

JET_COMMAND("info", "architecture, parameter count, layer types, KV-cache bytes per token", setup);

}  // namespace
