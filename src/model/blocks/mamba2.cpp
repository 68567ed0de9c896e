// Mamba2 as fla's Mamba2 layer: in_proj(x) = [z | xBC | dt]; xBC = SiLU(conv1d(xBC)) = [x | B | C];
// Δ = softplus(dt + dt_bias); SSD = the family's scalar-decay additive member with k = B, q = C,
// v = Δ·x, log decay Δ·A (A = −exp(A_log)), scale 1; y = o + D·x; out_proj(RMSNormGated(y, z)) with
// the gate applied before the norm (norm_before_gate = false) over groups of expand·D / n_groups.
// Group g of B and C serves heads [g·H/G, (g+1)·H/G) (fla's decode path and the CUDA kernels; its
// torch prefill path tiles groups the other way round, which only differs for n_groups > 1).
// Init: A_log = log U(1, 16), D = 1, dt_bias = softplus⁻¹(dt), conv1d as nn.Conv1d's default.
#include <ATen/ATen.h>

#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/norms/norms.h"
#include "ops/short_conv/short_conv.h"

namespace jet::model {
namespace {

class Mamba2 final : public LinearBlock {
 public:
  Mamba2(const Mamba2Config& c, uint64_t seed) : c_(c) {
    const int64_t D = c.hidden_size;
    inner_ = c.expand * D;
    JET_CHECK(inner_ % c.head_dim == 0, "mamba2 block: expand·hidden {} not divisible by head_dim {}", inner_,
              c.head_dim);
    H_ = inner_ / c.head_dim;
    JET_CHECK(H_ % c.n_groups == 0, "mamba2 block: {} heads not divisible by n_groups {}", H_, c.n_groups);
    conv_dim_ = inner_ + 2 * c.n_groups * c.state_size;
    Init init(seed);
    add("in_proj.weight", init.normal({inner_ + conv_dim_ + H_, D}, c.init_std));
    add("conv1d.weight", init.conv_weight(conv_dim_, c.conv_kernel));
    if (c.use_conv_bias) add("conv1d.bias", init.conv_bias(conv_dim_, c.conv_kernel));
    add("dt_bias", init.dt_bias(H_));
    add("A_log", init.a_log(H_, c.a_init_lo, c.a_init_hi));
    add("D", init.ones({H_}));
    add("norm.weight", init.ones({inner_}));
    add("out_proj.weight", init.normal({D, inner_}, c.init_std));
  }

  std::string type() const override { return "mamba2"; }

  BlockState init_state(int64_t batch) const override {
    const at::TensorOptions o = act_options();
    BlockState s;
    s.S = at::zeros({batch, H_, c_.state_size, c_.head_dim}, o.dtype(at::kFloat));
    s.conv = {at::zeros({batch, conv_dim_, c_.conv_kernel - 1}, o)};
    return s;
  }

  at::Tensor forward(const at::Tensor& x, BlockState* state) override {
    const at::Tensor zxbcdt = linear(x, "in_proj.weight");
    const at::Tensor xbc_raw = zxbcdt.narrow(-1, inner_, conv_dim_);
    const at::Tensor tail = state ? state->conv[0] : at::Tensor();
    const at::Tensor xbc = ops::short_conv(xbc_raw, conv_taps(p("conv1d.weight")), bias(), tail, true);
    const Ssm s = ssm_inputs(zxbcdt, xbc);
    ops::LinearAttentionOutput la =
        ops::linear_attention_chunked({s.C, s.B, s.v, s.g, at::Tensor(), state ? state->S : at::Tensor(), at::Tensor()},
                                      options());
    if (state) {
      state->S = la.final_state;
      state->conv[0] = ops::conv_tail_after(xbc_raw, tail, c_.conv_kernel);
      state->offset += x.size(1);
    }
    return output(la.o, s.x, zxbcdt);
  }

  at::Tensor step(const at::Tensor& x, BlockState& state) override {
    c10::NoGradGuard no_grad;
    const at::Tensor zxbcdt = linear(x, "in_proj.weight");
    const at::Tensor xbc = ops::short_conv_step(zxbcdt.narrow(-1, inner_, conv_dim_), conv_taps(p("conv1d.weight")),
                                                bias(), state.conv[0], true);
    const Ssm s = ssm_inputs(zxbcdt, xbc);
    const at::Tensor o = ops::linear_attention_step(s.C, s.B, s.v, s.g, at::Tensor(), state.S, options());
    state.offset += 1;
    return output(o, s.x, zxbcdt);
  }

 private:
  struct Ssm {
    at::Tensor x;     // [..., H, P] head inputs
    at::Tensor B, C;  // [..., H, N] per head (groups expanded)
    at::Tensor v;     // Δ·x [..., H, P]
    at::Tensor g;     // Δ·A [..., H] fp32
  };

  at::Tensor bias() const { return c_.use_conv_bias ? p("conv1d.bias") : at::Tensor(); }

  Ssm ssm_inputs(const at::Tensor& zxbcdt, const at::Tensor& xbc) const {
    const int64_t G = c_.n_groups, N = c_.state_size;
    Ssm s;
    s.x = split_heads(xbc.narrow(-1, 0, inner_), H_);
    auto per_head = [&](const at::Tensor& t) {  // [..., G·N] → [..., H, N]
      return split_heads(t, G).repeat_interleave(H_ / G, -2);
    };
    s.B = per_head(xbc.narrow(-1, inner_, G * N));
    s.C = per_head(xbc.narrow(-1, inner_ + G * N, G * N));
    const at::Tensor dt = at::softplus(zxbcdt.narrow(-1, inner_ + conv_dim_, H_).to(at::kFloat) +
                                       p("dt_bias").to(at::kFloat));  // Δ [..., H]
    s.v = s.x * dt.unsqueeze(-1).to(s.x.scalar_type());
    s.g = -p("A_log").to(at::kFloat).exp() * dt;
    return s;
  }

  // o [..., H, P] → out_proj(RMSNormGated(o + D·x, z)).
  at::Tensor output(const at::Tensor& o, const at::Tensor& xh, const at::Tensor& zxbcdt) const {
    const at::Tensor y = merge_heads(o.to(at::kFloat) + xh.to(at::kFloat) * p("D").to(at::kFloat).unsqueeze(-1));
    const at::Tensor n = ops::gated_rms_norm(y, zxbcdt.narrow(-1, 0, inner_), p("norm.weight"), c_.norm_eps,
                                             /*norm_before_gate=*/false, inner_ / c_.n_groups);
    return linear(n.to(zxbcdt.scalar_type()), "out_proj.weight");
  }

  static ops::LinearAttentionOptions options() { return {ops::Decay::scalar, /*delta=*/false, /*qk_l2norm=*/false, /*scale=*/1.0}; }

  Mamba2Config c_;
  int64_t H_, inner_, conv_dim_;
};

}  // namespace

std::unique_ptr<LinearBlock> make_mamba2(const Mamba2Config& c, uint64_t seed) {
  return std::make_unique<Mamba2>(c, seed);
}

}  // namespace jet::model
