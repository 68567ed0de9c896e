// CUDA chunked forward of the linear-attention family for scalar-per-head decay (none, fixed, scalar)
// with the additive or the delta-rule update: prefill and evaluation (no autograd; the ATen chunked
// path keeps the backward). The math is the WY form of README.md; three kernels:
//   prep    parallel over (chunk, head): 1/|k|, Γ = cumsum g, e^{Γ_C−Γ}/|k|, and for the delta rule
//           A = β K̂ K̂ᵀ e^{Γi−Γj}, T = (I + A)⁻¹ (blocked: 16×16 diagonal inverses, then row blocks, fp32),
//           T diag(β) (bf16, for U) and W = T diag(β e^Γ/|k|) K
//   state   one block per (sequence, head, 16·NW value columns), sequential over the chunks, Sᵀ in the
//           warps' accumulator registers: stores the incoming state per chunk (bf16), v' = T diag(β) V − W S
//           (delta) or v, and S ← e^{Γ_C} S + (e^{Γ_C−Γ} K̂)ᵀ v'
//   output  parallel over (chunk, head, 128 value columns): O = e^Γ (Q̂ S_chunk) + (Q̂ K̂ᵀ ⊙ e^{Γi−Γj})₊ v'
// Products on tensor cores (mma.sync bf16, fp32 accumulation) read q and k as given and apply the L2
// norms (K̂ = diag(1/|k|) K) in fp32 after the product; the state is carried in fp32.
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/linear_attention/linear_attention.h"

namespace jet::ops {

// q, k: [B, T, H, K] bf16; v: [B, T, H, V] bf16. g: log decay, fp32: undefined (no decay), [H]
// (fixed_decay) or [B, T, H]; beta: fp32 [B, T, H] for the delta rule, else undefined.
// initial_state: fp32 [N, H, K, V] or undefined (zeros); cu_seqlens: int64 [N + 1] (B == 1) or
// undefined (N = B). K ∈ {32, 64, 96, 128}, V a multiple of 8. Returns o [B, T, H, V] bf16 and the
// final state fp32 [N, H, K, V]. q is scaled by `scale` (after the L2 norm when qk_l2norm).
LinearAttentionOutput linear_attention_chunk_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                  const at::Tensor& g, bool fixed_decay, const at::Tensor& beta,
                                                  const at::Tensor& initial_state, const at::Tensor& cu_seqlens,
                                                  double scale, bool qk_l2norm);

// Whether linear_attention_chunk_cuda takes these head widths.
bool linear_attention_chunk_cuda_supports(int64_t K, int64_t V);

}  // namespace jet::ops
