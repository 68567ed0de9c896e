// RMSNorm and gated RMSNorm over the last dimension, computed in fp32 (float64 for float64 input),
// returned in x's dtype.
//   rms_norm(x)          = x / sqrt(mean(x²) + eps) · w
//   gated, norm first    = rms_norm(x) · SiLU(gate)        (fla FusedRMSNormGated: JetBlock, GDN, RetNet, GLA)
//   gated, gate first    = rms_norm(x · SiLU(gate))        (Mamba2's RMSNormGated, norm_before_gate = false)
// group_size > 0 normalises each group of that many channels separately (Mamba2 with n_groups > 1).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace jet::ops {

// x [..., D], weight [D] or undefined (no affine).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t group_size = 0);
at::Tensor rms_norm_ref(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t group_size = 0);

// x, gate [..., D]; weight [D] or undefined.
at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps,
                          bool norm_before_gate = true, int64_t group_size = 0);
at::Tensor gated_rms_norm_ref(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps,
                              bool norm_before_gate = true, int64_t group_size = 0);

}  // namespace jet::ops
