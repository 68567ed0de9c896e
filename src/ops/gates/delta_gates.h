// The per-token gates of the gated delta-rule blocks (JetBlock, Gated DeltaNet) from their projections of x:
//   g = −exp(A_log) · softplus(a + dt_bias)   (the log decay, Mamba2's form; softplus(u) = u above 20)
//   β = σ(b)                                  (the delta rule's write strength)
// both fp32 (float64 for float64 a). On CUDA (a, b bf16 or fp32, A_log and dt_bias fp32) one kernel forward and,
// with gradients, one backward (a custom autograd function: da, db, and dA_log, ddt_bias summed over tokens);
// elsewhere ATen ops with autograd.
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

namespace jet::ops {

// a, b [..., H] (any strides, e.g. column slices of one GEMM output); A_log, dt_bias [H]. Returns {g, β} [..., H].
std::pair<at::Tensor, at::Tensor> delta_gates(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                              const at::Tensor& dt_bias);
// The ATen path (any device, autograd) and the float64 oracle (softplus spelled out as log1p(exp(u))).
std::pair<at::Tensor, at::Tensor> delta_gates_aten(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                                   const at::Tensor& dt_bias);
std::pair<at::Tensor, at::Tensor> delta_gates_ref(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                                  const at::Tensor& dt_bias);

// The CUDA kernels (no autograd of their own). The backward takes the output gradients dg, dβ (fp32, either
// undefined = zero) and returns {da, db, dA_log, ddt_bias} in the inputs' dtypes.
bool delta_gates_cuda_supports(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                               const at::Tensor& dt_bias);
std::pair<at::Tensor, at::Tensor> delta_gates_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                                   const at::Tensor& dt_bias);
std::vector<at::Tensor> delta_gates_backward_cuda(const at::Tensor& dg, const at::Tensor& dbeta, const at::Tensor& a,
                                                  const at::Tensor& b, const at::Tensor& A_log, const at::Tensor& dt_bias);

}  // namespace jet::ops
