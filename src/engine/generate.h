// Text generation through the engine: each prompt is prefilled into a slot, then all live slots decode
// one token per step until max_new_tokens, a stop id, or a full cache; prompts beyond max_batch wait
// for a free slot. Tokens stream to a callback; both phases are timed per sequence.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/causal_lm.h"

namespace jet::engine {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
  int64_t max_batch = 0;          // slots; 0 = one per prompt
  int64_t prefill_chunk = 512;
  bool cuda_graph = true;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (the stop id included when one ended the run)
  bool stopped = false;         // ended on a stop id
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;   // prompt forward + first token
  double decode_seconds = 0;    // the remaining tokens
  double prefill_tok_per_s() const;
  double decode_tok_per_s() const;  // (tokens - 1) / decode_seconds
};

// Prompt i samples with seed + i * 0x9e3779b97f4a7c15 (sampling is per sequence, see sampler.h), so
// equal prompts in one batch get different continuations. on_token(i, id) is called for every id
// generated for prompts[i] as soon as it is sampled; returning false ends that sequence.
std::vector<GenerateResult> generate_batch(const model::CausalLM& lm,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& opts,
                                           const std::function<bool(size_t, int32_t)>& on_token = nullptr);

// One prompt (generate_batch of one).
GenerateResult generate(const model::CausalLM& lm, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts,
                        const std::function<bool(int32_t)>& on_token = nullptr);

}  // namespace jet::engine
