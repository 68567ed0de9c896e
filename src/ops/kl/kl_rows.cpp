// KL of logit rows: the float64 oracle, the ATen path and the dispatch to CUDA (see kl_rows.h).
#include "ops/kl/kl_rows.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "core/check.h"
#include "core/shape.h"

namespace jet::ops {
namespace {

void check_rows(const at::Tensor& zs, const at::Tensor& zt) {
  JET_CHECK(zs.dim() == 2 && zs.sizes() == zt.sizes() && zs.size(1) > 0,
            "kl_rows: logits must be [N, V] of one shape, got {} and {}", shape_str(zs.sizes()), shape_str(zt.sizes()));
  JET_CHECK(zs.scalar_type() == zt.scalar_type() && zs.device() == zt.device(),
            "kl_rows: student and teacher logits differ in dtype or device");
}

// log_softmax in the inputs' dtype; the gradient formed in place from the student's.
at::Tensor kl_rows_aten(const at::Tensor& zs, const at::Tensor& zt, double grad_scale, at::Tensor* gz,
                        at::ScalarType grad_dtype) {
  at::Tensor log_ps = at::log_softmax(zs, -1), log_pt = at::log_softmax(zt, -1);
  at::Tensor pt = log_pt.exp();
  at::Tensor kl = (pt * (log_pt - log_ps)).sum(-1);
  if (gz) *gz = log_ps.exp_().sub_(pt).mul_(grad_scale).to(grad_dtype);
  return kl;
}

}  // namespace

at::Tensor kl_rows_ref(const at::Tensor& zs, const at::Tensor& zt, double grad_scale, at::Tensor* gz) {
  check_rows(zs, zt);
  c10::NoGradGuard no_grad;
  return kl_rows_aten(zs.to(at::kDouble), zt.to(at::kDouble), grad_scale, gz, at::kDouble);
}

at::Tensor kl_rows(const at::Tensor& zs, const at::Tensor& zt, double grad_scale, at::Tensor* gz,
                   at::ScalarType grad_dtype) {
  check_rows(zs, zt);
  c10::NoGradGuard no_grad;
#ifdef JET_CUDA
  if (zs.is_cuda() && zs.scalar_type() == at::kFloat && (grad_dtype == at::kFloat || grad_dtype == at::kBFloat16))
    return kl_rows_cuda(zs.contiguous(), zt.contiguous(), grad_scale, gz, grad_dtype);
#endif
  return kl_rows_aten(zs, zt, grad_scale, gz, grad_dtype);
}

}  // namespace jet::ops
