// CUDA kernels of the chunked backward of the delta rule with one decay per token and head (GDN,
// JetBlock, DeltaNet): recomputation by the forward's prep and state kernels, the reverse pass over the
// chunks (state gradient, dV', the v gradient) and every product over the value columns
// (linear_attention_chunk_grad.cu). The rest of the per-chunk gradients (64×64 and 64×K work) is done
// by the caller (linear_attention_chunk_bwd.cpp). Math and names: README.md, "Chunked backward".
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/linear_attention/linear_attention_chunk_cuda.h"

namespace jet::ops {

// Per chunk tensors are [B, H, NC, 64, X] (NC = ceil(T / 64), rows past T zero), fp32.
struct ChunkGradCuda {
  at::Tensor T;       // (I + A)⁻¹ [.., 64, 64]
  at::Tensor dQs;     // dO S_cᵀ [.., 64, K]
  at::Tensor dKt;     // V' dS_{c+1}ᵀ
  at::Tensor dVS;     // dV' S_cᵀ
  at::Tensor dP;      // dO V'ᵀ [.., 64, 64]
  at::Tensor dVV;     // dV' Vᵀ
  at::Tensor dstate;  // ⟨S_c, dS_{c+1}⟩ [B, H, NC]
  at::Tensor dv;      // the v gradient [B, T, H, V] bf16
  at::Tensor ds0;     // the initial state's gradient [B, H, K, V] fp32
  // fused only (the per-chunk algebra in a kernel too): the q, k (bf16 [B, T, H, K]), β and per-token log
  // decay (fp32 [B, T, H]) gradients
  at::Tensor dq, dk, dbeta, dg;
};

// q, k, v, dO: bf16 [B, T, H, K|V] (T > 0, B equal sequences); g: fp32 [H] (fixed_decay), [B, T, H] or
// undefined (no decay); beta fp32 [B, T, H]; initial_state and dS (the final state's gradient): fp32
// [B, H, K, V] or undefined (zeros). Head widths as linear_attention_chunk_cuda_supports. fused: the
// per-chunk algebra runs in a kernel as well (dq, dk, dbeta, dg out; the per-chunk tensors are then internal).
ChunkGradCuda linear_attention_chunk_grad_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& g, bool fixed_decay, const at::Tensor& beta,
                                               const at::Tensor& initial_state, const at::Tensor& dO,
                                               const at::Tensor& dS, double scale, bool qk_l2norm, bool fused);

}  // namespace jet::ops
