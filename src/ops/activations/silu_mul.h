// SwiGLU's gate: silu(gate) · up, elementwise (model/layers.cpp Mlp).
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

// gate, up: same shape and dtype. On CUDA without autograd one kernel (fp32 math, one rounding; bf16 / fp32),
// else ATen (at::silu(gate) * up).
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up);
// Float64 reference (tests).
at::Tensor silu_mul_ref(const at::Tensor& gate, const at::Tensor& up);

bool silu_mul_cuda_supports(const at::Tensor& gate, const at::Tensor& up);
at::Tensor silu_mul_cuda(const at::Tensor& gate, const at::Tensor& up);

// silu(gu[..., :F]) · gu[..., F:] of a packed gate/up projection gu [..., 2F] (the MLP's one GEMM). On CUDA
// (bf16 / fp32) the kernel above on the halves, and with autograd a custom function whose backward is one kernel
// writing the gradient of gu whole (no split of it, no cat of the halves' gradients); else silu_mul of the halves.
at::Tensor silu_mul_packed(const at::Tensor& gu);
// That backward: d(gu) [..., 2F] (contiguous, gu's dtype) for the gradient dy [..., F] of the output.
at::Tensor silu_mul_packed_backward_cuda(const at::Tensor& dy, const at::Tensor& gu);

}  // namespace jet::ops
