// silu(gate) · up: the dispatcher, the ATen path and the float64 reference (the kernel is in silu_mul.cu).
#include "ops/activations/silu_mul.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/check.h"
#include "core/shape.h"

namespace jet::ops {

at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  JET_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
            "silu_mul: gate {} {} and up {} {} must match", shape_str(gate.sizes()), c10::toString(gate.scalar_type()),
            shape_str(up.sizes()), c10::toString(up.scalar_type()));
  const bool grad = at::GradMode::is_enabled() && (gate.requires_grad() || up.requires_grad());
  if (!grad && silu_mul_cuda_supports(gate, up)) return silu_mul_cuda(gate, up);
  return at::silu(gate) * up;
}

at::Tensor silu_mul_ref(const at::Tensor& gate, const at::Tensor& up) {
  const at::Tensor g = gate.to(at::kDouble);
  return g / (1.0 + at::exp(-g)) * up.to(at::kDouble);
}

#ifndef JET_CUDA
bool silu_mul_cuda_supports(const at::Tensor&, const at::Tensor&) { return false; }
at::Tensor silu_mul_cuda(const at::Tensor&, const at::Tensor&) { JET_FAIL("silu_mul_cuda needs a build with -DJET_CUDA=ON"); }
#endif

}  // namespace jet::ops
