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

}  // namespace jet::ops
