// JetBlock's layer formulas spelled out in float64 with the oracle ops (the CPU block tests and the GPU training
// test share them), reading the parameters by their official names (kernel layout "(d w)": channel-major,
// tap-minor).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/norms/norms.h"

namespace jet::test {

// x [B, T, D] float64, H heads of K (q, k) and V (v) channels, conv width 4, norm eps 1e-5; P(name) → float64.
inline at::Tensor jet_formulas(const at::Tensor& x, int64_t H, int64_t K, int64_t V,
                               const std::function<at::Tensor(const char*)>& P) {
  const int64_t B = x.size(0), T = x.size(1), W = 4;
  auto lin = [&](const at::Tensor& t, const char* n) { return at::matmul(t, P(n).t()); };
  const at::Tensor q = at::silu(lin(x, "q_proj.weight")).view({B, T, H, K});
  const at::Tensor k = at::silu(lin(x, "k_proj.weight")).view({B, T, H, K});
  const at::Tensor kernels =
      (at::matmul(at::silu(lin(x, "dynamic_conv1d.kernel_generator.w1.weight")),
                  P("dynamic_conv1d.kernel_generator.w2.weight").t()) +
       P("dynamic_conv1d.kernel_generator.w2.bias"))
          .view({B, T, H * V, W});
  const at::Tensor v = ops::dynamic_conv_ref(lin(x, "v_proj.weight"), kernels, at::Tensor(), true).view({B, T, H, V});
  const at::Tensor beta = at::sigmoid(lin(x, "b_proj.weight"));
  const at::Tensor g = -P("A_log").exp() * at::softplus(lin(x, "a_proj.weight") + P("dt_bias"));
  ops::LinearAttentionOptions opt;
  opt.decay = ops::Decay::scalar, opt.delta = true, opt.qk_l2norm = true;
  const at::Tensor o = ops::linear_attention_ref({q, k, v, g, beta, at::Tensor(), at::Tensor()}, opt).o;
  const at::Tensor n = ops::gated_rms_norm_ref(o, lin(x, "g_proj.weight").view({B, T, H, V}), P("o_norm.weight"), 1e-5);
  return lin(n.reshape({B, T, H * V}), "o_proj.weight");
}

}  // namespace jet::test
