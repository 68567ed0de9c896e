// silu(gate) · up: the dispatcher, the ATen path and the float64 reference (the kernel is in silu_mul.cu).
#include "ops/activations/silu_mul.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <vector>

#include "core/check.h"
#include "core/shape.h"
#ifdef JET_CUDA
#include <torch/csrc/autograd/custom_function.h>
#endif

namespace jet::ops {

at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  JET_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
            "silu_mul: gate {} {} and up {} {} must match", shape_str(gate.sizes()), c10::toString(gate.scalar_type()),
            shape_str(up.sizes()), c10::toString(up.scalar_type()));
  const bool grad = at::GradMode::is_enabled() && (gate.requires_grad() || up.requires_grad());
  if (!grad && silu_mul_cuda_supports(gate, up)) return silu_mul_cuda(gate, up);
  return at::silu(gate) * up;
}

#ifdef JET_CUDA
namespace {

// silu_mul_packed on CUDA with gradients: gu saved, the backward kernel writes d(gu) whole.
struct SiluMulPackedFunction : torch::autograd::Function<SiluMulPackedFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gu) {
    ctx->save_for_backward({gu});
    const int64_t F = gu.size(-1) / 2;
    return silu_mul_cuda(gu.narrow(-1, 0, F), gu.narrow(-1, F, F));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {silu_mul_packed_backward_cuda(grads[0], ctx->get_saved_variables()[0])};
  }
};

}  // namespace
#endif

at::Tensor silu_mul_packed(const at::Tensor& gu) {
  JET_CHECK(gu.dim() >= 1 && gu.size(-1) % 2 == 0, "silu_mul_packed: gu {} must be [..., 2F]", shape_str(gu.sizes()));
  const int64_t F = gu.size(-1) / 2;
  const at::Tensor g = gu.narrow(-1, 0, F), u = gu.narrow(-1, F, F);
#ifdef JET_CUDA
  if (silu_mul_cuda_supports(g, u))
    return at::GradMode::is_enabled() && gu.requires_grad() ? SiluMulPackedFunction::apply(gu) : silu_mul_cuda(g, u);
#endif
  // split, not narrow, under autograd: the halves' gradients are joined by one cat (a narrow's backward zero-fills a
  // full-width gradient per half, then adds them).
  const std::vector<at::Tensor> h = gu.split(F, -1);
  return silu_mul(h[0], h[1]);
}

at::Tensor silu_mul_ref(const at::Tensor& gate, const at::Tensor& up) {
  const at::Tensor g = gate.to(at::kDouble);
  return g / (1.0 + at::exp(-g)) * up.to(at::kDouble);
}

#ifndef JET_CUDA
bool silu_mul_cuda_supports(const at::Tensor&, const at::Tensor&) { return false; }
at::Tensor silu_mul_cuda(const at::Tensor&, const at::Tensor&) { JET_FAIL("silu_mul_cuda needs a build with -DJET_CUDA=ON"); }
at::Tensor silu_mul_packed_backward_cuda(const at::Tensor&, const at::Tensor&) {
  JET_FAIL("silu_mul_packed_backward_cuda needs a build with -DJET_CUDA=ON");
}
#endif

}  // namespace jet::ops
