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

namespace jet::ops {

// JetBlock's whole recurrent core for one decode token (the engine's hot path), two kernels: a prologue
// (SiLU, conv step with its tail, gates; fp32 results) and the gated-delta-rule step kernel:
//   q, k = SiLU(q_raw), SiLU(k_raw), then L2-normalised           q_raw, k_raw: [B, H, K]
//   v = SiLU(Σ_j κ[c, j] · window[c, j]), window = (tail, v_raw)  v_raw: [B, H·V]; kernels [B, H·V, W]
//   tail ← last W−1 raw values                                     tail: [B, H·V, W−1], in place
//   β = sigmoid(b_raw), g = −exp(A_log)·softplus(a_raw + dt_bias) a_raw, b_raw: [B, H]; A_log, dt_bias: [H] fp32
//   gated delta rule step on state [B, H, K, V] fp32 (in place)   → o [B, H, V] in q_raw's dtype.
// q_raw, k_raw, v_raw, kernels, a_raw, b_raw, tail share one dtype (fp32 or bf16).
at::Tensor jet_block_step_cuda(const at::Tensor& q_raw, const at::Tensor& k_raw, const at::Tensor& v_raw,
                               const at::Tensor& kernels, at::Tensor& tail, const at::Tensor& a_raw,
                               const at::Tensor& b_raw, const at::Tensor& A_log, const at::Tensor& dt_bias,
                               at::Tensor& state, double scale);

// JetBlock's output gate for one decode token, per head: y = o · rsqrt(mean_V(o²) + eps) · weight · SiLU(gate),
// fp32 math. o [B, H, V] contiguous; gate [B, H·V] with unit inner stride (a view into a wider projection
// output is fine), o's dtype; weight [V] fp32. Returns y [B, H·V] in o's dtype.
at::Tensor gated_rms_norm_step_cuda(const at::Tensor& o, const at::Tensor& gate, const at::Tensor& weight,
                                    double eps);

}  // namespace jet::ops
