// `jet info --model PATH | --config FILE [--context L]`: architecture, parameter count, layer types,
// cache bytes per token and the cache of one sequence of L tokens by layer type, read from the config
// alone (no weights are loaded).
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

struct Opts {
  std::string model, config;
  int64_t context = 4096;
};

void run(const Opts& o) {
  JET_CHECK(!o.model.empty() || !o.config.empty(), "give --model or --config");
  JET_CHECK(o.model.empty() || o.config.empty(), "give only one of --model and --config");
  JET_CHECK(o.context >= 1, "--context must be >= 1, got {}", o.context);
  jet::model::ModelConfig c;
  if (!o.model.empty()) {
    jet::model::LoadOptions load;
    load.weights = false;
    load.tokenizer = false;
    c = jet::model::load_checkpoint(o.model, load).config;
  } else {
    c = jet::model::ModelConfig::from_file(o.config);
  }
  const jet::model::CausalLM lm(c);
  const int64_t n = lm.num_parameters();
  fmt::print("model:          {}\n", o.model.empty() ? o.config : o.model);
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
  // One sequence of --context tokens in a bf16 model, by layer type.
  const auto by_type = lm.cache_bytes_by_type(o.context, 2);
  int64_t total = 0;
  for (const auto& t : by_type) total += t.bytes;
  fmt::print("cache/sequence: {:.2f} MB at {} tokens (bf16 model)\n", total / 1e6, o.context);
  for (const auto& t : by_type)
    fmt::print("  {:<8} x{:<3} {:>10.2f} MB\n", t.type, t.layers, t.bytes / 1e6);
  fmt::print("max positions:  {}\n", c.max_position_embeddings);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "GGUF file or HF directory");
  app.add_option("--config", o->config, "a config.json (no weights needed)");
  app.add_option("--context", o->context, "tokens per sequence for the cache line (default 4096)");
  app.callback([o] { run(*o); });
}

JET_COMMAND("info", "architecture, parameter count, layer types, cache bytes per token and per sequence", setup);

}  // namespace
