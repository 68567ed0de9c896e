// Per-token causal depthwise convolution: the ATen path (forward by unfolding, autograd backward), the
// dispatch to the CUDA kernels (forward, and forward + backward as a custom autograd function) and the
// in-place decode step.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "core/check.h"
#include "core/shape.h"
#include "ops/compute_type.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#ifdef JET_CUDA
#include <torch/csrc/autograd/custom_function.h>

#include "ops/dynamic_conv/dynamic_conv_cuda.h"
#endif

namespace jet::ops {
namespace {

void check_tail(const at::Tensor& tail, int64_t B, int64_t C, int64_t W, const char* who) {
  if (tail.defined())
    JET_CHECK(tail.sizes() == at::IntArrayRef({B, C, W - 1}), "{}: conv tail {} must be [{}, {}, {}]", who,
              shape_str(tail.sizes()), B, C, W - 1);
}

}  // namespace

at::Tensor causal_windows(const at::Tensor& x, const at::Tensor& tail, int64_t W) {
  JET_CHECK(x.dim() == 3 && W >= 1, "causal conv: x {} must be [B, T, C] and W ≥ 1", shape_str(x.sizes()));
  const int64_t B = x.size(0), C = x.size(2);
  check_tail(tail, B, C, W, "causal conv");
  const at::Tensor head = tail.defined() ? tail.to(x.scalar_type()).transpose(1, 2) : at::zeros({B, W - 1, C}, x.options());
  return at::cat({head, x}, 1).unfold(1, W, 1);  // [B, T, C, W]
}

at::Tensor conv_tail_after(const at::Tensor& x, const at::Tensor& tail, int64_t W) {
  const int64_t B = x.size(0), C = x.size(2);
  check_tail(tail, B, C, W, "causal conv");
  const at::Tensor head = tail.defined() ? tail.to(x.scalar_type()) : at::zeros({B, C, W - 1}, x.options());
  const at::Tensor all = at::cat({head, x.transpose(1, 2)}, 2);  // [B, C, W−1+T]
  return all.narrow(2, all.size(2) - (W - 1), W - 1).contiguous();
}

#ifdef JET_CUDA
namespace {

// dynamic_conv on CUDA with gradients: the CUDA forward, and dynamic_conv_backward_cuda as its backward
// (z recomputed there, so only the inputs are saved). Not twice differentiable. A C++ autograd function
// takes no undefined tensor, so "no tail" comes in as an empty 1-d tensor (a tail is 3-d).
struct DynamicConvFunction : torch::autograd::Function<DynamicConvFunction> {
  static at::Tensor tail_of(const at::Tensor& t) { return t.dim() == 3 ? t : at::Tensor(); }
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& kernels,
                            const at::Tensor& tail_or_empty, bool silu) {
    ctx->save_for_backward({x, kernels, tail_or_empty});
    ctx->saved_data["silu"] = silu;
    return dynamic_conv_cuda(x, kernels, tail_of(tail_or_empty), silu);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    std::vector<at::Tensor> g = dynamic_conv_backward_cuda(grads[0], saved[0], saved[1], tail_of(saved[2]),
                                                           ctx->saved_data["silu"].toBool(), ctx->needs_input_grad(0),
                                                           ctx->needs_input_grad(1), ctx->needs_input_grad(2));
    return {g[0], g[1], g[2], at::Tensor()};
  }
};

}  // namespace
#endif

at::Tensor dynamic_conv(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu) {
  JET_CHECK(kernels.dim() == 4 && x.dim() == 3 && kernels.size(0) == x.size(0) && kernels.size(1) == x.size(1) &&
                kernels.size(2) == x.size(2),
            "dynamic_conv: kernels {} must be [B, T, C, W] for x {}", shape_str(kernels.sizes()), shape_str(x.sizes()));
#ifdef JET_CUDA
  const int64_t W = kernels.size(3);
  // On CUDA with taps of x's dtype (fp32 or bf16): one fused kernel instead of windows × taps; with a
  // gradient wanted, the CUDA backward too (for W ≤ kDynamicConvBwdMaxW; wider convs keep the ATen path).
  if (x.is_cuda() && kernels.scalar_type() == x.scalar_type() &&
      (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat)) {
    check_tail(tail, x.size(0), x.size(2), W, "dynamic_conv");
    const bool grad = c10::GradMode::is_enabled() &&
                      (x.requires_grad() || kernels.requires_grad() || (tail.defined() && tail.requires_grad()));
    if (!grad) return dynamic_conv_cuda(x, kernels, tail, silu);
    if (W <= kDynamicConvBwdMaxW)
      return DynamicConvFunction::apply(x, kernels, tail.defined() ? tail : at::empty({0}, x.options()), silu);
  }
#endif
  return dynamic_conv_aten(x, kernels, tail, silu);
}

at::Tensor dynamic_conv_aten(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu) {
  JET_CHECK(kernels.dim() == 4 && x.dim() == 3, "dynamic_conv_aten: x [B, T, C], kernels [B, T, C, W]");
  const at::ScalarType ct = compute_type(x);
  at::Tensor y = (causal_windows(x.to(ct), tail, kernels.size(3)) * kernels.to(ct)).sum(-1);
  if (silu) y = at::silu(y);
  return y.to(x.scalar_type());
}

at::Tensor dynamic_conv_ref(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu) {
  JET_CHECK(kernels.dim() == 4 && x.dim() == 3, "dynamic_conv_ref: x [B, T, C], kernels [B, T, C, W]");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), W = kernels.size(3);
  check_tail(tail, B, C, W, "dynamic_conv_ref");
  const at::Tensor xd = x.to(at::kDouble), kd = kernels.to(at::kDouble);
  const at::Tensor td = tail.defined() ? tail.to(at::kDouble) : at::zeros({B, C, W - 1}, xd.options());
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor acc = at::zeros({B, C}, xd.options());
    for (int64_t j = 0; j < W; ++j) {
      const int64_t s = t - W + 1 + j;  // source token; negative indexes the tail
      const at::Tensor src = s >= 0 ? xd.select(1, s) : td.select(2, W - 1 + s);
      acc = acc + kd.select(1, t).select(2, j) * src;
    }
    ys.push_back(silu ? at::silu(acc) : acc);
  }
  return T ? at::stack(ys, 1) : at::zeros({B, 0, C}, xd.options());
}

at::Tensor dynamic_conv_step(const at::Tensor& x, const at::Tensor& kernels, at::Tensor& tail, bool silu) {
  JET_CHECK(x.dim() == 2 && kernels.dim() == 3 && kernels.size(0) == x.size(0) && kernels.size(1) == x.size(1),
            "dynamic_conv_step: x {} must be [B, C] and kernels {} [B, C, W]", shape_str(x.sizes()),
            shape_str(kernels.sizes()));
  const int64_t W = kernels.size(2);
  check_tail(tail, x.size(0), x.size(1), W, "dynamic_conv_step");
  JET_CHECK(tail.defined(), "dynamic_conv_step: the conv tail is required");
  const at::ScalarType ct = compute_type(x);
  const at::Tensor window = at::cat({tail.to(ct), x.to(ct).unsqueeze(-1)}, -1);  // [B, C, W]
  at::Tensor y = (window * kernels.to(ct)).sum(-1);
  tail.copy_(window.narrow(-1, 1, W - 1));
  if (silu) y = at::silu(y);
  return y.to(x.scalar_type());
}

}  // namespace jet::ops
