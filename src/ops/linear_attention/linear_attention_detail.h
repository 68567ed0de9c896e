// Internals shared by the linear-attention paths (reference, chunked, recurrent): running a batch
// function once per packed sequence and joining the results.
#pragma once
#include "ops/linear_attention/linear_attention.h"

namespace jet::ops::detail {

using BatchFn = LinearAttentionOutput (*)(const LinearAttentionInput&, const LinearAttentionOptions&);

// Without cu_seqlens: fn(in). With it: fn on each sequence [cu[n], cu[n+1]) as a batch of one (its
// slice of initial_state), outputs concatenated along T and final states along N.
LinearAttentionOutput per_sequence(const LinearAttentionInput& in, const LinearAttentionOptions& opt, BatchFn fn);

}  // namespace jet::ops::detail
