// Float64 oracles of RMSNorm and gated RMSNorm: one channel group at a time, root-mean-square spelled out.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "core/check.h"
#include "ops/norms/norms.h"

namespace jet::ops {

at::Tensor rms_norm_ref(const at::Tensor& x, const at::Tensor& weight, double eps, int64_t group_size) {
  const at::Tensor xd = x.to(at::kDouble);
  const int64_t D = xd.size(-1), g = group_size > 0 ? group_size : D;
  JET_CHECK(D % g == 0, "rms_norm_ref: group size {} does not divide {}", g, D);
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < D; s += g) {
    const at::Tensor part = xd.narrow(-1, s, g);
    const at::Tensor rms = at::sqrt((part * part).sum(-1, true) / static_cast<double>(g) + eps);
    parts.push_back(part / rms);
  }
  at::Tensor y = at::cat(parts, -1);
  if (weight.defined()) y = y * weight.to(at::kDouble);
  return y;
}

std::pair<at::Tensor, at::Tensor> add_rms_norm_ref(const at::Tensor& x, const at::Tensor& y,
                                                   const at::Tensor& weight, double eps) {
  const at::Tensor h = x.to(at::kDouble) + y.to(at::kDouble);
  return {h, rms_norm_ref(h, weight, eps)};
}

at::Tensor gated_rms_norm_ref(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps,
                              bool norm_before_gate, int64_t group_size) {
  const at::Tensor gd = gate.to(at::kDouble);
  const at::Tensor swish = gd / (1.0 + at::exp(-gd));
  if (norm_before_gate) return rms_norm_ref(x, weight, eps, group_size) * swish;
  return rms_norm_ref(x.to(at::kDouble) * swish, weight, eps, group_size);
}

}  // namespace jet::ops
