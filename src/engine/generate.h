// Text generation for one sequence: prefill the prompt through the cache, then decode one token at a
// time until max_new_tokens or a stop id, streaming each token to a callback and timing both phases.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/sampler.h"
#include "model/causal_lm.h"

namespace jet::engine {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
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

// on_token(id) is called for every generated id as soon as it is sampled; returning false stops.
GenerateResult generate(const model::CausalLM& lm, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts,
                        const std::function<bool(int32_t)>& on_token = nullptr);

}  // namespace jet::engine
