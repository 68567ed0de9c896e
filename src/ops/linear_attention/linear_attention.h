// The linear-attention op family: one state S ∈ R^{K×V} per head, updated per token by
//   S_t = a_t ⊙ S_{t-1}                      (decay: none, fixed per head, scalar or vector per token)
//   u_t = delta ? β_t (v_t − S_tᵀ k_t) : v_t  (update: additive or delta rule, S_t already decayed)
//   S_t += k_t u_tᵀ,   o_t = S_tᵀ (scale · q_t)
// with q, k optionally L2-normalised first. Three paths share these semantics:
//   linear_attention_ref        float64 per-token loop (the test oracle, autograd-able)
//   linear_attention_chunked    chunk-64 WY form in ATen ops (training and prefill; autograd backward)
//   linear_attention_recurrent  per-token loop of linear_attention_step (decode, ≤ 64 tokens; no autograd)
// README.md next to this file derives the chunked form and maps the six block types onto the family.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace jet::ops {

enum class Decay { none, fixed, scalar, vector };

struct LinearAttentionOptions {
  Decay decay = Decay::none;
  bool delta = false;        // delta-rule update (needs beta)
  bool qk_l2norm = false;    // L2-normalise q and k inside the op (eps 1e-6 under the root, like fla)
  double scale = -1.0;       // query scale; ≤ 0 means K^-1/2
};

// Layout follows fla: tokens before heads.
struct LinearAttentionInput {
  at::Tensor q, k;           // [B, T, H, K]
  at::Tensor v;              // [B, T, H, V]
  at::Tensor g;              // log decay (≤ 0): fixed [H]; scalar [B, T, H]; vector [B, T, H, K]; none: undefined
  at::Tensor beta;           // [B, T, H] for the delta rule, else undefined
  at::Tensor initial_state;  // [N, H, K, V] (N = B, or the number of packed sequences); undefined = zeros
  at::Tensor cu_seqlens;     // int64 [N + 1] offsets of packed sequences (then B == 1); undefined = none
};

struct LinearAttentionOutput {
  at::Tensor o;              // [B, T, H, V], dtype of v
  at::Tensor final_state;    // [N, H, K, V], fp32 (float64 for the reference and float64 inputs)
};

constexpr int64_t kLinearAttentionChunk = 64;

LinearAttentionOutput linear_attention_ref(const LinearAttentionInput& in, const LinearAttentionOptions& opt);
LinearAttentionOutput linear_attention_chunked(const LinearAttentionInput& in, const LinearAttentionOptions& opt);
LinearAttentionOutput linear_attention_recurrent(const LinearAttentionInput& in,
                                                 const LinearAttentionOptions& opt);

// fla's mode switch: the recurrent loop for ≤ 64 tokens when no gradient is needed, else chunked.
LinearAttentionOutput linear_attention(const LinearAttentionInput& in, const LinearAttentionOptions& opt);

// One decode token for B sequences, state updated in place.
// q, k: [B, H, K]; v: [B, H, V]; g: fixed [H], scalar [B, H], vector [B, H, K] or undefined;
// beta: [B, H] or undefined; state: [B, H, K, V] fp32 (or float64). Returns o [B, H, V] in v's dtype.
at::Tensor linear_attention_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& g, const at::Tensor& beta, at::Tensor& state,
                                 const LinearAttentionOptions& opt);

// Checks shapes and options of a call (one-line jet::Error naming the bad tensor); used by every path.
void check_linear_attention(const LinearAttentionInput& in, const LinearAttentionOptions& opt);

// The query scale that opt asks for at head width K.
double linear_attention_scale(const LinearAttentionOptions& opt, int64_t K);

// x / sqrt(Σ x² + 1e-6) over the last dimension.
at::Tensor l2_normalize(const at::Tensor& x);

}  // namespace jet::ops
