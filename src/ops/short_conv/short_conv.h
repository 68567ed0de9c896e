// Static causal depthwise convolution (fla's ShortConvolution, Mamba2's conv1d):
//   y_t[c] = act( b[c] + Σ_{j<W} w[c, j] · x_{t−W+1+j}[c] ), act = SiLU or identity,
// with the same tail convention as dynamic_conv.h ([B, C, W−1], the last W−1 inputs).
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

// x [B, T, C], weight [C, W] (an nn.Conv1d weight [C, 1, W] viewed), bias [C] or undefined,
// tail [B, C, W−1] or undefined → y [B, T, C] in x's dtype. Differentiable in all tensors.
at::Tensor short_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& tail,
                      bool silu);

// Float64 oracle (token/tap loop). Returns float64.
at::Tensor short_conv_ref(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          const at::Tensor& tail, bool silu);

// One decode token: x [B, C] → y [B, C]; tail [B, C, W−1] updated in place.
at::Tensor short_conv_step(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& tail,
                           bool silu);

}  // namespace jet::ops
