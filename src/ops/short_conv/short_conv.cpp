// Static short conv as the dynamic conv with one kernel broadcast over batch and tokens, plus bias.
#include <ATen/ATen.h>

#include "core/check.h"
#include "core/shape.h"
#include "ops/compute_type.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/short_conv/short_conv.h"

namespace jet::ops {
namespace {

void check_weight(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t C = x.size(-1);
  JET_CHECK(weight.dim() == 2 && weight.size(0) == C, "short_conv: weight {} must be [{}, W]",
            shape_str(weight.sizes()), C);
  if (bias.defined())
    JET_CHECK(bias.dim() == 1 && bias.size(0) == C, "short_conv: bias {} must be [{}]", shape_str(bias.sizes()), C);
}

at::Tensor finish(at::Tensor y, const at::Tensor& bias, bool silu, at::ScalarType out) {
  if (bias.defined()) y = y + bias.to(y.scalar_type());
  if (silu) y = at::silu(y);
  return y.to(out);
}

}  // namespace

at::Tensor short_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& tail,
                      bool silu) {
  JET_CHECK(x.dim() == 3, "short_conv: x {} must be [B, T, C]", shape_str(x.sizes()));
  check_weight(x, weight, bias);
  const at::ScalarType ct = compute_type(x);
  const at::Tensor kernels = weight.to(ct).expand({x.size(0), x.size(1), weight.size(0), weight.size(1)});
  return finish(dynamic_conv(x.to(ct), kernels, tail, false), bias, silu, x.scalar_type());
}

at::Tensor short_conv_ref(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          const at::Tensor& tail, bool silu) {
  JET_CHECK(x.dim() == 3, "short_conv_ref: x {} must be [B, T, C]", shape_str(x.sizes()));
  check_weight(x, weight, bias);
  const at::Tensor kernels = weight.to(at::kDouble).expand({x.size(0), x.size(1), weight.size(0), weight.size(1)});
  return finish(dynamic_conv_ref(x, kernels, tail, false), bias, silu, at::kDouble);
}

at::Tensor short_conv_step(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& tail,
                           bool silu) {
  JET_CHECK(x.dim() == 2, "short_conv_step: x {} must be [B, C]", shape_str(x.sizes()));
  check_weight(x, weight, bias);
  const at::ScalarType ct = compute_type(x);
  const at::Tensor kernels = weight.to(ct).expand({x.size(0), weight.size(0), weight.size(1)});
  return finish(dynamic_conv_step(x.to(ct), kernels, tail, false), bias, silu, x.scalar_type());
}

}  // namespace jet::ops
