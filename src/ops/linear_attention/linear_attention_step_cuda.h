// CUDA decode step of the linear-attention family (one token per sequence, state in place).
// See linear_attention.h for the math; this is the fused fast path the engine's decode uses.
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

enum class StepDecay { none, scalar, vector };

// q, k: [B, H, K]; v: [B, H, V] (fp32 or bf16, same dtype); g: log-decay, fp32, [B, H] (scalar) or
// [B, H, K] (vector), undefined for none; beta: [B, H] fp32, undefined for the additive update;
// state: [B, H, K, V] fp32, updated in place. Returns o [B, H, V] in v's dtype:
//   S = decay ⊙ S;  u = delta ? beta·(v − Sᵀk) : v;  S += k uᵀ;  o = Sᵀ(scale·q)
// with q, k L2-normalised first when qk_l2norm. K ∈ {16, 32, 64, 96, 128, 192, 256}.
at::Tensor linear_attention_step_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& g, const at::Tensor& beta, at::Tensor& state,
                                      StepDecay decay, double scale, bool qk_l2norm);

}  // namespace jet::ops
