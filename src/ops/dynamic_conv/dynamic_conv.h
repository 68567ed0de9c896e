// Causal depthwise convolution with a kernel per token (JetBlock's value path):
//   y_t[c] = act( Σ_{j<W} κ_t[c, j] · x_{t−W+1+j}[c] ),  x before the sequence start = the tail
// (the last W−1 inputs of the previous call, zeros for a fresh sequence); act = SiLU or identity.
// Also the helpers shared with the static short conv: causal windows and the tail update.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace jet::ops {

// x [B, T, C], tail [B, C, W−1] or undefined (zeros) → windows [B, T, C, W], windows[b,t,c,j] = x_{t−W+1+j}[c].
at::Tensor causal_windows(const at::Tensor& x, const at::Tensor& tail, int64_t W);

// The last W−1 inputs of (tail, x): [B, C, W−1]; zeros stand in for a missing tail.
at::Tensor conv_tail_after(const at::Tensor& x, const at::Tensor& tail, int64_t W);

// x [B, T, C], kernels [B, T, C, W], tail [B, C, W−1] or undefined → y [B, T, C] in x's dtype
// (computed in fp32, float64 for float64 inputs). shared [C, W] or undefined: taps added to every token's kernels
// (JetBlock's kernel-generator bias: its gradient is then summed inside the CUDA backward instead of by a pass over
// the kernels' gradient). Differentiable in x, kernels, tail and shared. On CUDA (fp32 or bf16, taps in x's dtype)
// the CUDA kernels: forward, and with gradients the CUDA backward as well (a custom autograd function, W ≤ 4);
// elsewhere dynamic_conv_aten.
at::Tensor dynamic_conv(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu,
                        const at::Tensor& shared = {});

// The ATen path of dynamic_conv on any device (windows × taps, ATen autograd for the backward).
at::Tensor dynamic_conv_aten(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu,
                             const at::Tensor& shared = {});

// Float64 oracle of dynamic_conv: a loop over tokens and taps. Returns float64.
at::Tensor dynamic_conv_ref(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu,
                            const at::Tensor& shared = {});

// One decode token: x [B, C], kernels [B, C, W], tail [B, C, W−1] updated in place → y [B, C].
at::Tensor dynamic_conv_step(const at::Tensor& x, const at::Tensor& kernels, at::Tensor& tail, bool silu);

}  // namespace jet::ops
