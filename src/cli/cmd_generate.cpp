// `jet generate`: streams a continuation of --prompt (optionally in the model's chat template) and
// ends with a line of prefill and decode speed. --temperature 0 is greedy; --print-token-ids also
// prints the generated ids as a JSON list. Several --prompt (or a JSON list of id lists) generate as
// one batch through the engine; their continuations print in order when all are done. --config F
// --random-init runs a randomly initialised model of any config (speed without weights; --prompt-ids).
#include <ATen/Parallel.h>

#include <cstdio>
#include <functional>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_args.h"
#include "core/check.h"
#include "core/device.h"
#include "engine/generate.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"

namespace {

struct Opts {
  jet::cli::ModelArgs source;
  std::vector<std::string> prompts;
  std::string prompt_ids, device = "cpu", dtype = "fp32";
  bool chat = false, print_ids = false, no_graph = false;
  int64_t max_new_tokens = 128, max_batch = 0, prefill_chunk = 512;
  jet::engine::SamplingParams sampling;
};

// A JSON list of ids (one prompt) or a list of such lists (a batch).
std::vector<std::vector<int32_t>> parse_prompt_ids(const std::string& s) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s);
  } catch (const nlohmann::json::exception&) {
    JET_FAIL("--prompt-ids: expected a JSON list of token ids");
  }
  JET_CHECK(j.is_array() && !j.empty(), "--prompt-ids: expected a non-empty JSON list of token ids");
  if (!j[0].is_array()) j = nlohmann::json::array({j});
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : j) {
    JET_CHECK(p.is_array() && !p.empty(), "--prompt-ids: {} is not a non-empty list of token ids", p.dump());
    std::vector<int32_t> ids;
    for (const auto& v : p) {
      JET_CHECK(v.is_number_integer(), "--prompt-ids: entry {} is not an integer", v.dump());
      ids.push_back(v.get<int32_t>());
    }
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

void run(const Opts& o) {
  const auto device = jet::parse_device(o.device);
  const auto dtype = jet::cli::parse_model_dtype(o.dtype, device);
  jet::engine::check_sampling_params(o.sampling);
  JET_CHECK(o.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", o.max_new_tokens);
  JET_CHECK(o.prompts.empty() != o.prompt_ids.empty(), "give --prompt (one or more) or --prompt-ids, not both");
  JET_CHECK(!o.chat || o.prompt_ids.empty(), "--chat needs --prompt (text)");

  auto ck = o.source.checkpoint(/*tokenizer=*/true, dtype.quantized);
  const std::string where = ck.path;
  const jet::text::Tokenizer* tok = ck.tokenizer.get();
  JET_CHECK(tok || !o.prompt_ids.empty(), "{}: no tokenizer (an HF directory needs tokenizer.json)", where);
  std::vector<std::vector<int32_t>> prompts;
  if (!o.prompt_ids.empty()) {
    prompts = parse_prompt_ids(o.prompt_ids);
  } else {
    JET_CHECK(!o.chat || tok->has_chat_template(), "{}: the model has no chat template (drop --chat)", where);
    for (const std::string& p : o.prompts) {
      const std::string text =
          o.chat ? tok->apply_chat_template({{"user", p}}, /*add_generation_prompt=*/true) : p;
      // A rendered chat template already holds its BOS (Llama-3) or needs none (ChatML).
      prompts.push_back(tok->encode(text, /*add_special_tokens=*/!o.chat));
    }
  }
  const auto lm_ptr = o.source.build(ck, dtype, device, o.sampling.seed);
  const jet::model::CausalLM& lm = *lm_ptr;

  jet::engine::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.sampling = o.sampling;
  g.max_batch = o.max_batch;
  g.prefill_chunk = o.prefill_chunk;
  g.cuda_graph = !o.no_graph;
  for (int64_t id : ck.config.eos_token_ids) g.stop_ids.push_back(static_cast<int32_t>(id));
  if (tok)
    for (int32_t id : tok->stop_ids()) g.stop_ids.push_back(id);

  // Text (complete UTF-8) or, without a tokenizer, the ids. One prompt streams as it is sampled.
  auto text_of = [&](const std::vector<int32_t>& ids) {
    if (!tok) return fmt::format("{}", fmt::join(ids, " "));
    jet::text::StreamDecoder d(*tok);
    std::string out;
    for (int32_t id : ids)
      if (!tok->is_special(id)) out += d.push(id);
    return out + d.flush();
  };
  std::optional<jet::text::StreamDecoder> stream;
  if (tok) stream.emplace(*tok);
  std::function<bool(size_t, int32_t)> on_token;
  if (prompts.size() == 1)
    on_token = [&](size_t, int32_t id) {
      if (!stream)
        fmt::print("{} ", id);
      else if (!tok->is_special(id))
        fmt::print("{}", stream->push(id));
      std::fflush(stdout);
      return true;
    };
  const auto results = jet::engine::generate_batch(lm, prompts, g, on_token);
  if (prompts.size() == 1) {
    if (stream) fmt::print("{}", stream->flush());
    fmt::print("\n");
  } else {
    for (size_t i = 0; i < results.size(); ++i) fmt::print("[{}] {}\n", i, text_of(results[i].tokens));
  }
  if (o.print_ids) {
    if (results.size() == 1) {
      fmt::print("{}\n", nlohmann::json(results[0].tokens).dump());
    } else {
      nlohmann::json all = nlohmann::json::array();
      for (const auto& r : results) all.push_back(r.tokens);
      fmt::print("{}\n", all.dump());
    }
  }
  int64_t prompt_tokens = 0, generated = 0;
  double prefill_s = 0, decode_tok_s = 0;
  for (const auto& r : results) {
    prompt_tokens += r.prompt_tokens;
    generated += static_cast<int64_t>(r.tokens.size());
    prefill_s += r.prefill_seconds;
    decode_tok_s += r.decode_tok_per_s();  // per sequence; the sum is the batch's rate
  }
  fmt::print("[prefill {} tokens, {:.1f} tok/s | decode {} tokens, {:.1f} tok/s{} | {} {} {} threads{}]\n",
             prompt_tokens, prefill_s > 0 ? prompt_tokens / prefill_s : 0.0, generated, decode_tok_s,
             results.size() > 1 ? fmt::format(" ({} sequences)", results.size()) : "", dtype.name(),
             device.str(), at::get_num_threads(), device.is_cuda() && !o.no_graph ? ", cuda graph" : "");
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  o->sampling.temperature = 0.8;
  o->sampling.top_k = 40;
  o->sampling.top_p = 0.95;
  o->source.add_to(app);
  app.add_option("--prompt", o->prompts, "prompt text (repeat for a batch)")->allow_extra_args(false);
  app.add_option("--prompt-ids", o->prompt_ids, "(dev) prompt as a JSON list of token ids, or a list of lists");
  app.add_flag("--chat", o->chat, "wrap the prompt in the model's chat template");
  app.add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate (default 128)");
  app.add_option("--temperature", o->sampling.temperature, "0 = greedy (default 0.8)");
  app.add_option("--top-k", o->sampling.top_k, "keep the k most likely tokens, 0 = off (default 40)");
  app.add_option("--top-p", o->sampling.top_p, "nucleus probability, 1 = off (default 0.95)");
  app.add_option("--seed", o->sampling.seed, "sampling seed (default 0)");
  jet::cli::add_device_options(app, o->device, o->dtype);
  app.add_flag("--print-token-ids", o->print_ids, "also print the generated ids as a JSON list");
  app.add_option("--max-batch", o->max_batch, "sequences decoded together (default: all prompts)");
  jet::cli::add_engine_options(app, o->prefill_chunk, o->no_graph);
  app.callback([o] { run(*o); });
}

JET_COMMAND("generate", "stream a continuation of a prompt; prints prefill/decode tok/s", setup);

}  // namespace
