// Continuous batching over the engine's slots.
#include "engine/generate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <deque>

#include "core/check.h"

namespace jet::engine {
namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

double GenerateResult::prefill_tok_per_s() const {
  return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0;
}

double GenerateResult::decode_tok_per_s() const {
  return decode_seconds > 0 && tokens.size() > 1 ? (tokens.size() - 1) / decode_seconds : 0;
}

std::vector<GenerateResult> generate_batch(const model::CausalLM& lm,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& opts,
                                           const std::function<bool(size_t, int32_t)>& on_token) {
  JET_CHECK(!prompts.empty(), "generate: no prompts");
  JET_CHECK(opts.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", opts.max_new_tokens);
  JET_CHECK(opts.max_batch >= 0, "--max-batch must be >= 0, got {}", opts.max_batch);
  check_sampling_params(opts.sampling);
  std::vector<GenerateResult> results(prompts.size());
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    JET_CHECK(!prompts[i].empty(), "generate: prompt {} is empty", i);
    results[i].prompt_tokens = static_cast<int64_t>(prompts[i].size());
    longest = std::max(longest, prompts[i].size());
  }
  if (opts.max_new_tokens == 0) return results;

  EngineOptions eo;
  eo.max_batch = opts.max_batch > 0 ? std::min<int64_t>(opts.max_batch, prompts.size()) : prompts.size();
  eo.max_len = static_cast<int64_t>(longest) + opts.max_new_tokens;
  eo.prefill_chunk = opts.prefill_chunk;
  eo.cuda_graph = opts.cuda_graph;
  Engine engine(lm, eo, opts.sampling);

  std::deque<size_t> waiting;
  for (size_t i = 0; i < prompts.size(); ++i) waiting.push_back(i);
  std::vector<int64_t> seq_of(eo.max_batch, -1);  // slot -> prompt index
  std::vector<Clock::time_point> first(prompts.size());
  int64_t live = 0;
  // Records token `id` of the sequence in `slot`; frees the slot when the sequence ends.
  auto emit = [&](int64_t slot, int32_t id) {
    const size_t i = static_cast<size_t>(seq_of[slot]);
    GenerateResult& r = results[i];
    r.tokens.push_back(id);
    const bool go_on = on_token ? on_token(i, id) : true;
    r.stopped = std::find(opts.stop_ids.begin(), opts.stop_ids.end(), id) != opts.stop_ids.end();
    const bool full = engine.length(slot) >= eo.max_len;  // no room to feed this token
    if (r.stopped || !go_on || full || static_cast<int64_t>(r.tokens.size()) >= opts.max_new_tokens) {
      r.decode_seconds = seconds(first[i], Clock::now());
      engine.free(slot);
      seq_of[slot] = -1;
      --live;
    }
  };
  while (!waiting.empty() || live > 0) {
    while (!waiting.empty() && live < eo.max_batch) {
      const size_t i = waiting.front();
      waiting.pop_front();
      const int64_t slot = engine.alloc();
      seq_of[slot] = static_cast<int64_t>(i);
      ++live;
      const auto t0 = Clock::now();
      SamplingParams sp = opts.sampling;  // each sequence its own draws (prompt 0: the seed itself)
      sp.seed += i * 0x9e3779b97f4a7c15ull;
      const int32_t id = engine.prefill(slot, prompts[i], sp);
      first[i] = Clock::now();
      results[i].prefill_seconds = seconds(t0, first[i]);
      emit(slot, id);
    }
    if (live == 0) continue;
    const std::vector<int32_t> next = engine.step();
    for (int64_t s = 0; s < eo.max_batch; ++s)
      if (seq_of[s] >= 0) emit(s, next[s]);
  }
  return results;
}

GenerateResult generate(const model::CausalLM& lm, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts, const std::function<bool(int32_t)>& on_token) {
  JET_CHECK(!prompt.empty(), "generate: the prompt is empty");
  std::function<bool(size_t, int32_t)> cb;
  if (on_token) cb = [&](size_t, int32_t id) { return on_token(id); };
  return generate_batch(lm, {prompt}, opts, cb).front();
}

}  // namespace jet::engine
