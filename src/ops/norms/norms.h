// RMSNorm and gated RMSNorm over the last dimension, computed in fp32 (float64 for float64 input),
// returned in x's dtype.
//   rms_norm(x)          = x / sqrt(mean(x²) + eps) · w
//   gated, norm first    = rms_norm(x) · SiLU(gate)        (fla FusedRMSNormGated: JetBlock, GDN, RetNet, GLA)
//   gated, gate first    = rms_norm(x · SiLU(gate))        (Mamba2's RMSNormGated, norm_before_gate = false)
// group_size > 0 normalises each group of that many channels separately (Mamba2 with n_groups > 1).
//   add_rms_norm(x, y)   = (h, rms_norm(h)) with h = x + y in x's dtype (the decoder's residual stream)
// On CUDA rms_norm (group_size 0) and add_rms_norm are one kernel (norms.cu); with autograd and a weight, the
// norm is a custom autograd function with a CUDA backward kernel (the residual add stays an ATen add). The gated
// form the linear blocks use (norm first, one group, a weight) is one CUDA kernel forward and one backward, with or
// without autograd. Elsewhere (CPU, float64, wider rows than the backward kernel takes) ATen.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace jet::ops {

// x [..., D], weight [D] or undefined (no affine).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t group_size = 0);
at::Tensor rms_norm_ref(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t group_size = 0);

// x, y [..., D] of one dtype; weight [D] or undefined. Returns {h = x + y, rms_norm(h, weight)}; the norm
// reads h as rounded to x's dtype, like the two ops one after the other.
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight,
                                               double eps);
std::pair<at::Tensor, at::Tensor> add_rms_norm_ref(const at::Tensor& x, const at::Tensor& y,
                                                   const at::Tensor& weight, double eps);

// The CUDA kernel behind both (bf16 / fp32, weight of x's dtype, no autograd): y undefined = plain rms_norm,
// then only the normalised tensor is returned (first = undefined).
bool rms_norm_cuda_supports(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight);
std::pair<at::Tensor, at::Tensor> rms_norm_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight,
                                                double eps);

// x, gate [..., D]; weight [D] or undefined.
at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps,
                          bool norm_before_gate = true, int64_t group_size = 0);
at::Tensor gated_rms_norm_ref(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps,
                              bool norm_before_gate = true, int64_t group_size = 0);

// The CUDA kernels behind gated_rms_norm's norm-first, ungrouped form (no autograd of their own): x, gate [..., V]
// of one dtype (bf16 or fp32; any strides whose leading dimensions flatten to rows of the heads, e.g. a column
// slice of a wider GEMM output), weight [V] fp32 or x's dtype, V ≤ kGatedRmsNormMaxWidth. fp32 math, one rounding.
// The backward returns {dx, dgate, dweight} for the gradient dy of y (dweight in weight's dtype).
constexpr int64_t kGatedRmsNormMaxWidth = 1024;
bool gated_rms_norm_cuda_supports(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight);
at::Tensor gated_rms_norm_cuda(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps);
std::vector<at::Tensor> gated_rms_norm_backward_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& gate,
                                                     const at::Tensor& weight, double eps);

// The plain RMSNorm's backward kernel (rows of at most kGatedRmsNormMaxWidth; weight fp32, x's dtype or
// undefined): {dx, dweight (undefined without a weight)} for the gradient dy of rms_norm(x, weight).
bool rms_norm_backward_cuda_supports(const at::Tensor& x, const at::Tensor& weight);
std::pair<at::Tensor, at::Tensor> rms_norm_backward_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& weight, double eps);

}  // namespace jet::ops
