// Prefill + decode loop over the model's per-sequence cache.
#include "engine/generate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "core/check.h"

namespace jet::engine {
namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

double GenerateResult::prefill_tok_per_s() const {
  return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0;
}

double GenerateResult::decode_tok_per_s() const {
  return decode_seconds > 0 && tokens.size() > 1 ? (tokens.size() - 1) / decode_seconds : 0;
}

GenerateResult generate(const model::CausalLM& lm, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts, const std::function<bool(int32_t)>& on_token) {
  JET_CHECK(!prompt.empty(), "generate: the prompt is empty");
  JET_CHECK(opts.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", opts.max_new_tokens);
  GenerateResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  if (opts.max_new_tokens == 0) return r;
  at::InferenceMode guard;
  Sampler sampler(opts.sampling);
  const int64_t total = r.prompt_tokens + opts.max_new_tokens;
  model::Cache cache = lm.new_cache(1, total);

  auto t0 = std::chrono::steady_clock::now();
  at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong).unsqueeze(0);
  // Only the last position's logits are needed: skip the LM head for the rest of the prompt.
  at::Tensor h = lm.hidden(ids, 0, &cache);
  int64_t next = sampler.sample(lm.lm_head(h.select(1, r.prompt_tokens - 1))[0]);
  r.prefill_seconds = seconds_since(t0);

  auto t1 = std::chrono::steady_clock::now();
  for (int64_t pos = r.prompt_tokens;; ++pos) {
    r.tokens.push_back(static_cast<int32_t>(next));
    bool go_on = on_token ? on_token(static_cast<int32_t>(next)) : true;
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), next) != opts.stop_ids.end()) {
      r.stopped = true;
      break;
    }
    if (!go_on || static_cast<int64_t>(r.tokens.size()) >= opts.max_new_tokens) break;
    at::Tensor step = at::full({1, 1}, next, at::kLong);
    next = sampler.sample(lm.forward(step, pos, &cache)[0][0]);
  }
  r.decode_seconds = seconds_since(t1);
  return r;
}

}  // namespace jet::engine
