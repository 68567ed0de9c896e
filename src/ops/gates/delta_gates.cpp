// The delta-rule gates: the dispatch, the ATen path, the float64 oracle and (CUDA builds) the autograd function
// around the kernels of delta_gates.cu.
#include "ops/gates/delta_gates.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "core/check.h"
#include "core/shape.h"
#include "ops/compute_type.h"
#ifdef JET_CUDA
#include <torch/csrc/autograd/custom_function.h>
#endif

namespace jet::ops {
namespace {

void check_gates(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log, const at::Tensor& dt_bias) {
  JET_CHECK(a.dim() >= 1 && b.sizes() == a.sizes(), "delta_gates: a {} and b {} must be [..., H] alike",
            shape_str(a.sizes()), shape_str(b.sizes()));
  const int64_t H = a.size(-1);
  JET_CHECK(A_log.dim() == 1 && A_log.size(0) == H && dt_bias.dim() == 1 && dt_bias.size(0) == H,
            "delta_gates: A_log {} and dt_bias {} must be [{}]", shape_str(A_log.sizes()), shape_str(dt_bias.sizes()), H);
}

#ifdef JET_CUDA
// Saves only the inputs (the backward recomputes softplus and σ). Not twice differentiable.
struct DeltaGatesFunction : torch::autograd::Function<DeltaGatesFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                                                const at::Tensor& b, const at::Tensor& A_log, const at::Tensor& dt_bias) {
    ctx->save_for_backward({a, b, A_log, dt_bias});
    auto [g, beta] = delta_gates_cuda(a, b, A_log, dt_bias);
    return {g, beta};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    return delta_gates_backward_cuda(grads[0], grads[1], s[0], s[1], s[2], s[3]);
  }
};
#endif

}  // namespace

std::pair<at::Tensor, at::Tensor> delta_gates(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                              const at::Tensor& dt_bias) {
  check_gates(a, b, A_log, dt_bias);
#ifdef JET_CUDA
  if (delta_gates_cuda_supports(a, b, A_log, dt_bias)) {
    const bool grad = c10::GradMode::is_enabled() &&
                      (a.requires_grad() || b.requires_grad() || A_log.requires_grad() || dt_bias.requires_grad());
    if (!grad) return delta_gates_cuda(a, b, A_log, dt_bias);
    const auto out = DeltaGatesFunction::apply(a, b, A_log, dt_bias);
    return {out[0], out[1]};
  }
#endif
  return delta_gates_aten(a, b, A_log, dt_bias);
}

std::pair<at::Tensor, at::Tensor> delta_gates_aten(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                                   const at::Tensor& dt_bias) {
  check_gates(a, b, A_log, dt_bias);
  const at::ScalarType ct = compute_type(a);
  return {-A_log.to(ct).exp() * at::softplus(a.to(ct) + dt_bias.to(ct)), at::sigmoid(b.to(ct))};
}

std::pair<at::Tensor, at::Tensor> delta_gates_ref(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                                  const at::Tensor& dt_bias) {
  check_gates(a, b, A_log, dt_bias);
  const at::Tensor u = a.to(at::kDouble) + dt_bias.to(at::kDouble);
  const at::Tensor softplus = at::where(u > 20.0, u, at::log1p(at::exp(u)));
  return {-at::exp(A_log.to(at::kDouble)) * softplus, 1.0 / (1.0 + at::exp(-b.to(at::kDouble)))};
}

#ifndef JET_CUDA
bool delta_gates_cuda_supports(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  return false;
}
std::pair<at::Tensor, at::Tensor> delta_gates_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                   const at::Tensor&) {
  JET_FAIL("delta_gates_cuda needs a build with -DJET_CUDA=ON");
}
std::vector<at::Tensor> delta_gates_backward_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                  const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  JET_FAIL("delta_gates_backward_cuda needs a build with -DJET_CUDA=ON");
}
#endif

}  // namespace jet::ops
