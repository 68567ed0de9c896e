// CUDA forward and backward of the dynamic causal convolution (dynamic_conv.h). dynamic_conv takes them on
// CUDA (the backward through a custom autograd function); these are the raw kernels, no autograd.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace jet::ops {

// x [B, T, C] (read in place when its tokens are rows at one stride with unit channel stride, e.g. a column slice
// of a wider GEMM output; else copied) and kernels [B, T, C, W], one dtype (fp32 or bf16); tail [B, C, W−1] or
// undefined (zeros). Returns y [B, T, C] in x's dtype, y = act(Σ_j κ[.., j] · x_{t−W+1+j}), fp32 math.
// shared [C, W] or undefined: taps added to every token's (JetBlock's kernel-generator bias), any float dtype.
at::Tensor dynamic_conv_cuda(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu,
                             const at::Tensor& shared = {});

// Largest kernel width W of the CUDA backward (wider convs keep the ATen path).
constexpr int64_t kDynamicConvBwdMaxW = 4;

// Backward of dynamic_conv_cuda for the gradient dy [B, T, C] of y: returns {dx [B, T, C], dkernels
// [B, T, C, W], dtail [B, C, W−1], dshared [C, W]}, each undefined unless asked for (dtail also when there is no tail).
// z = Σ_j κ_j x_{t−W+1+j} is recomputed, dz = dy · act'(z); dκ_t[c, j] = dz_t[c] · x_{t−W+1+j}[c],
// dx_s[c] = Σ_j dz_{s+W−1−j}[c] · κ_{s+W−1−j}[c, j] (tokens s < 0: the tail). fp32 math; outputs in x's
// dtype (dtail in tail's). x, kernels share fp32 or bf16; 1 ≤ W ≤ kDynamicConvBwdMaxW.
// With shared taps: κ_t = kernels_t + shared throughout, and dshared = Σ_{b,t} dκ_t (fp32 sums, returned in shared's
// dtype) as a fourth output when asked for.
std::vector<at::Tensor> dynamic_conv_backward_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& kernels,
                                                   const at::Tensor& tail, bool silu, bool need_dx, bool need_dkernels,
                                                   bool need_dtail, const at::Tensor& shared = {},
                                                   bool need_dshared = false);

}  // namespace jet::ops
