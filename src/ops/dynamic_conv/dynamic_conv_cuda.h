// CUDA forward of the dynamic causal convolution (dynamic_conv.h) for prefill and evaluation, no autograd:
// one thread per output value, reading its W per-token taps (contiguous) and the W inputs it covers.
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

// x [B, T, C] and kernels [B, T, C, W], both contiguous, one dtype (fp32 or bf16); tail [B, C, W−1] or
// undefined (zeros). Returns y [B, T, C] in x's dtype, y = act(Σ_j κ[.., j] · x_{t−W+1+j}), fp32 math.
at::Tensor dynamic_conv_cuda(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu);

}  // namespace jet::ops
