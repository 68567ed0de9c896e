// The distillation loss of PostNAS on rows of logits: per row, KL(softmax(z_t) ‖ softmax(z_s)) and its
// gradient with respect to z_s, (softmax(z_s) − softmax(z_t)). One pass over a row gives the KL through
// log-sum-exps kept online (Σ p_t (log p_t − log p_s) = Σ e^{z_t − m_t}(z_t − z_s) / l_t − lse_t + lse_s),
// a second pass writes the gradient; nothing [N, V] besides the gradient is materialised.
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

// zs, zt [N, V] fp32 logits (student, teacher; any temperature already applied). Returns the per-row KL [N]
// (fp32; float64 for float64 inputs). With gz: *gz = grad_scale · (softmax(zs) − softmax(zt)) [N, V] in
// grad_dtype. On CUDA one kernel per pass; elsewhere ATen.
at::Tensor kl_rows(const at::Tensor& zs, const at::Tensor& zt, double grad_scale = 1.0, at::Tensor* gz = nullptr,
                   at::ScalarType grad_dtype = at::kFloat);

// Float64 oracle: the same from log_softmax in double. Returns float64 (gz too).
at::Tensor kl_rows_ref(const at::Tensor& zs, const at::Tensor& zt, double grad_scale = 1.0, at::Tensor* gz = nullptr);

#ifdef JET_CUDA
// The CUDA kernels behind kl_rows (contiguous fp32 CUDA rows; grad_dtype fp32 or bf16).
at::Tensor kl_rows_cuda(const at::Tensor& zs, const at::Tensor& zt, double grad_scale, at::Tensor* gz,
                        at::ScalarType grad_dtype);
#endif

}  // namespace jet::ops
