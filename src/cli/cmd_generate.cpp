// `jet generate`: streams a continuation of --prompt (optionally in the model's chat template) and
// ends with a line of prefill and decode speed. --temperature 0 is greedy; --print-token-ids also
// prints the generated ids as a JSON list. --config F --random-init runs a randomly initialised model of
// any config (speed without weights; prompt as --prompt-ids).
#include <ATen/Parallel.h>

#include <cstdio>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/check.h"
#include "core/device.h"
#include "engine/generate.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/random_init.h"
#include "text/tokenizer.h"

namespace {

struct Opts {
  std::string model, config, prompt, prompt_ids, device = "cpu", dtype = "fp32";
  bool chat = false, print_ids = false, random_init = false;
  int64_t max_new_tokens = 128;
  jet::engine::SamplingParams sampling;
};

std::vector<int32_t> parse_prompt_ids(const std::string& s) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s);
  } catch (const nlohmann::json::exception&) {
    JET_FAIL("--prompt-ids: expected a JSON list of token ids");
  }
  JET_CHECK(j.is_array() && !j.empty(), "--prompt-ids: expected a non-empty JSON list of token ids");
  std::vector<int32_t> ids;
  for (const auto& v : j) {
    JET_CHECK(v.is_number_integer(), "--prompt-ids: entry {} is not an integer", v.dump());
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

void run(const Opts& o) {
  const auto device = jet::parse_device(o.device);
  const auto dtype = jet::parse_dtype(o.dtype);
  jet::engine::check_sampling_params(o.sampling);
  JET_CHECK(o.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", o.max_new_tokens);
  JET_CHECK(o.prompt.empty() != o.prompt_ids.empty(), "give exactly one of --prompt and --prompt-ids");
  JET_CHECK(!o.chat || o.prompt_ids.empty(), "--chat needs --prompt (text)");

  JET_CHECK(!o.model.empty() || !o.config.empty(), "--model is required (or --config with --random-init)");
  JET_CHECK(o.model.empty() || o.config.empty(), "give only one of --model and --config");
  JET_CHECK(o.config.empty() == !o.random_init, "--config and --random-init go together");
  jet::model::Checkpoint ck;
  if (o.random_init) {
    ck.path = o.config;
    ck.config = jet::model::ModelConfig::from_file(o.config);
  } else {
    ck = jet::model::load_checkpoint(o.model);
  }
  const std::string& where = ck.path;
  const jet::text::Tokenizer* tok = ck.tokenizer.get();
  JET_CHECK(tok || !o.prompt_ids.empty(), "{}: no tokenizer (an HF directory needs tokenizer.json)", where);
  std::vector<int32_t> prompt;
  if (!o.prompt_ids.empty()) {
    prompt = parse_prompt_ids(o.prompt_ids);
  } else {
    std::string text = o.prompt;
    if (o.chat) {
      JET_CHECK(tok->has_chat_template(), "{}: the model has no chat template (drop --chat)", where);
      text = tok->apply_chat_template({{"user", o.prompt}}, /*add_generation_prompt=*/true);
    }
    // A rendered chat template already holds its BOS (Llama-3) or needs none (ChatML).
    prompt = tok->encode(text, /*add_special_tokens=*/!o.chat);
  }
  jet::model::CausalLM lm(ck.config);
  if (o.random_init) ck.tensors = jet::model::random_weights(lm, o.sampling.seed, dtype);
  lm.load_weights(ck.tensors, dtype, device, where);
  ck.tensors.clear();

  jet::engine::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.sampling = o.sampling;
  for (int64_t id : ck.config.eos_token_ids) g.stop_ids.push_back(static_cast<int32_t>(id));
  if (tok)
    for (int32_t id : tok->stop_ids()) g.stop_ids.push_back(id);

  // Text streams as soon as it is complete UTF-8; without a tokenizer the ids stream instead.
  std::optional<jet::text::StreamDecoder> stream;
  if (tok) stream.emplace(*tok);
  auto result = jet::engine::generate(lm, prompt, g, [&](int32_t id) {
    if (!stream)
      fmt::print("{} ", id);
    else if (!tok->is_special(id))
      fmt::print("{}", stream->push(id));
    std::fflush(stdout);
    return true;
  });
  if (stream) fmt::print("{}", stream->flush());
  fmt::print("\n");
  if (o.print_ids) fmt::print("{}\n", nlohmann::json(result.tokens).dump());
  fmt::print("[prefill {} tokens, {:.1f} tok/s | decode {} tokens, {:.1f} tok/s | {} {} {} threads]\n",
             result.prompt_tokens, result.prefill_tok_per_s(), result.tokens.size(),
             result.decode_tok_per_s(), jet::dtype_str(dtype), device.str(), at::get_num_threads());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  o->sampling.temperature = 0.8;
  o->sampling.top_k = 40;
  o->sampling.top_p = 0.95;
  app.add_option("--model", o->model, "GGUF file or HF directory");
  app.add_option("--config", o->config, "a config.json alone (with --random-init)");
  app.add_flag("--random-init", o->random_init, "random weights (official init, seeded by --seed) for --config");
  app.add_option("--prompt", o->prompt, "prompt text");
  app.add_option("--prompt-ids", o->prompt_ids, "(dev) prompt as a JSON list of token ids");
  app.add_flag("--chat", o->chat, "wrap the prompt in the model's chat template");
  app.add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate (default 128)");
  app.add_option("--temperature", o->sampling.temperature, "0 = greedy (default 0.8)");
  app.add_option("--top-k", o->sampling.top_k, "keep the k most likely tokens, 0 = off (default 40)");
  app.add_option("--top-p", o->sampling.top_p, "nucleus probability, 1 = off (default 0.95)");
  app.add_option("--seed", o->sampling.seed, "sampling (and --random-init) seed (default 0)");
  app.add_option("--device", o->device, "cpu | cuda (default cpu)");
  app.add_option("--dtype", o->dtype, "fp32 | bf16 (default fp32)");
  app.add_flag("--print-token-ids", o->print_ids, "also print the generated ids as a JSON list");
  app.callback([o] { run(*o); });
}

JET_COMMAND("generate", "stream a continuation of a prompt; prints prefill/decode tok/s", setup);

}  // namespace
