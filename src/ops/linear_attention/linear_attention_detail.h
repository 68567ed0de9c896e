// Internals shared by the linear-attention paths (reference, chunked forward and backward, recurrent):
// running a batch function once per packed sequence, the chunk layout and the per-token log decay.
#pragma once
#include "ops/linear_attention/linear_attention.h"

namespace jet::ops::detail {

using BatchFn = LinearAttentionOutput (*)(const LinearAttentionInput&, const LinearAttentionOptions&);

// Without cu_seqlens: fn(in). With it: fn on each sequence [cu[n], cu[n+1]) as a batch of one (its
// slice of initial_state), outputs concatenated along T and final states along N.
LinearAttentionOutput per_sequence(const LinearAttentionInput& in, const LinearAttentionOptions& opt, BatchFn fn);

// [B, T, H, X] -> [B, H, NC, C, X] (C = kLinearAttentionChunk), zero-padded to NC·C tokens.
at::Tensor to_chunks(const at::Tensor& x, int64_t NC);

// [B, H, NC, C, X] -> [B, T, H, X], the padding dropped.
at::Tensor from_chunks(const at::Tensor& x, int64_t T);

// The log decay of every token in dtype ct: [B, T, H, 1] (none: zeros; fixed: g [H] broadcast; scalar) or
// [B, T, H, K] (vector), for q of shape [B, T, H, K].
at::Tensor token_log_decay(const at::Tensor& g, const LinearAttentionOptions& opt, const at::Tensor& q,
                           at::ScalarType ct);

}  // namespace jet::ops::detail
