// ATen path of RMSNorm, residual add + RMSNorm and gated RMSNorm (autograd backward), and the dispatch to
// the CUDA kernel (norms.cu) when no gradient is needed.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/check.h"
#include "core/shape.h"
#include "ops/compute_type.h"
#include "ops/norms/norms.h"

namespace jet::ops {
namespace {

int64_t checked_group(const at::Tensor& x, const at::Tensor& weight, int64_t group_size) {
  const int64_t D = x.size(-1);
  if (weight.defined())
    JET_CHECK(weight.dim() == 1 && weight.size(0) == D, "rms_norm: weight {} must be [{}]",
              shape_str(weight.sizes()), D);
  const int64_t g = group_size > 0 ? group_size : D;
  JET_CHECK(D % g == 0, "rms_norm: group size {} does not divide {}", g, D);
  return g;
}

// Normalises x [..., D] in groups of g channels, then applies weight.
at::Tensor normalise(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t g) {
  const int64_t D = x.size(-1);
  std::vector<int64_t> grouped(x.sizes().begin(), x.sizes().end() - 1);
  grouped.push_back(D / g);
  grouped.push_back(g);
  const at::Tensor xg = x.reshape(grouped);
  at::Tensor y = (xg * at::rsqrt(xg.square().mean(-1, true) + eps)).reshape(x.sizes());
  if (weight.defined()) y = y * weight.to(x.scalar_type());
  return y;
}

// The fused kernel has no backward: it serves inference (and no-grad) calls only.
bool use_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight) {
  const bool grad = at::GradMode::is_enabled() &&
                    (x.requires_grad() || (y.defined() && y.requires_grad()) || (weight.defined() && weight.requires_grad()));
  return !grad && rms_norm_cuda_supports(x, y, weight);
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t group_size) {
  const int64_t g = checked_group(x, weight, group_size);
  if (g == x.size(-1) && use_cuda(x, at::Tensor(), weight)) return rms_norm_cuda(x, at::Tensor(), weight, eps).second;
  return normalise(x.to(compute_type(x)), weight, eps, g).to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight,
                                               double eps) {
  JET_CHECK(y.sizes() == x.sizes() && y.scalar_type() == x.scalar_type(), "add_rms_norm: y {} {} must match x {} {}",
            shape_str(y.sizes()), c10::toString(y.scalar_type()), shape_str(x.sizes()), c10::toString(x.scalar_type()));
  checked_group(x, weight, 0);
  if (use_cuda(x, y, weight)) return rms_norm_cuda(x, y, weight, eps);
  at::Tensor h = x + y;
  at::Tensor n = rms_norm(h, weight, eps);
  return {std::move(h), std::move(n)};
}

#ifndef JET_CUDA
bool rms_norm_cuda_supports(const at::Tensor&, const at::Tensor&, const at::Tensor&) { return false; }
std::pair<at::Tensor, at::Tensor> rms_norm_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
  JET_FAIL("rms_norm_cuda needs a build with -DJET_CUDA=ON");
}
#endif

at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps,
                          bool norm_before_gate, int64_t group_size) {
  JET_CHECK(gate.sizes() == x.sizes(), "gated_rms_norm: gate {} must match x {}", shape_str(gate.sizes()),
            shape_str(x.sizes()));
  const int64_t g = checked_group(x, weight, group_size);
  const at::ScalarType ct = compute_type(x);
  const at::Tensor xf = x.to(ct), sg = at::silu(gate.to(ct));
  const at::Tensor y = norm_before_gate ? normalise(xf, weight, eps, g) * sg : normalise(xf * sg, weight, eps, g);
  return y.to(x.scalar_type());
}

}  // namespace jet::ops
