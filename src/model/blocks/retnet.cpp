// Multi-scale retention as fla's MultiScaleRetention layer (defaults: no short conv, swish output
// gate, fused norm): q, k = RoPE(x W) (rotate-half, θ = 10000, whole head width, positions continue
// from the state's offset), v = x W; fixed decay γ_h = 1 − 2^(−5−h); scale K^-1/2;
// o = o_proj(RMSNorm(o) · SiLU(x W_g)) with the norm named g_norm_swish_gate.
#include <ATen/ATen.h>

#include <cmath>

#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/linear_attention/linear_attention.h"

namespace jet::model {
namespace {

class RetNet final : public LinearBlock {
 public:
  RetNet(const RetNetConfig& c, uint64_t seed) : c_(c) {
    const int64_t D = c.hidden_size;
    H_ = c.num_heads;
    key_dim_ = static_cast<int64_t>(D * c.expand_k);
    value_dim_ = static_cast<int64_t>(D * c.expand_v);
    JET_CHECK(key_dim_ % H_ == 0 && value_dim_ % H_ == 0 && (key_dim_ / H_) % 2 == 0,
              "retnet block: key/value dims {}/{} must split into {} heads (even key width)", key_dim_, value_dim_, H_);
    Init init(seed);
    add("q_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("k_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("v_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("g_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("g_norm_swish_gate.weight", init.ones({value_dim_ / H_}));
    add("o_proj.weight", init.normal({D, value_dim_}, c.init_std));
    std::vector<double> lg;
    for (int64_t h = 0; h < H_; ++h) lg.push_back(std::log(1.0 - std::pow(2.0, -5.0 - h)));
    log_gamma_ = at::tensor(lg, at::kDouble).to(at::kFloat);
  }

  std::string type() const override { return "retnet"; }

  BlockState init_state(int64_t batch) const override {
    BlockState s;
    s.S = at::zeros({batch, H_, key_dim_ / H_, value_dim_ / H_}, act_options().dtype(at::kFloat));
    return s;
  }

  at::Tensor forward(const at::Tensor& x, BlockState* state) override {
    const int64_t T = x.size(1), start = state ? state->offset : 0;
    const at::Tensor pos = at::arange(start, start + T, x.options().dtype(at::kFloat)).view({1, T, 1, 1});
    ops::LinearAttentionOutput la = ops::linear_attention_chunked(
        {rope(split_heads(linear(x, "q_proj.weight"), H_), pos), rope(split_heads(linear(x, "k_proj.weight"), H_), pos),
         split_heads(linear(x, "v_proj.weight"), H_), log_gamma_.to(x.device()), at::Tensor(),
         state ? state->S : at::Tensor(), at::Tensor()},
        options());
    if (state) {
      state->S = la.final_state;
      state->offset += T;
    }
    return norm_gate_out(la.o, x, "g_norm_swish_gate.weight", c_.norm_eps);
  }

  at::Tensor step(const at::Tensor& x, BlockState& state) override {
    c10::NoGradGuard no_grad;
    const at::Tensor pos = at::full({1, 1, 1}, static_cast<double>(state.offset), x.options().dtype(at::kFloat));
    const at::Tensor o = ops::linear_attention_step(
        rope(split_heads(linear(x, "q_proj.weight"), H_), pos), rope(split_heads(linear(x, "k_proj.weight"), H_), pos),
        split_heads(linear(x, "v_proj.weight"), H_), log_gamma_.to(x.device()), at::Tensor(), state.S, options());
    state.offset += 1;
    return norm_gate_out(o, x, "g_norm_swish_gate.weight", c_.norm_eps);
  }

 private:
  // Rotate-half RoPE of x [..., H, K] at positions pos (broadcastable to [..., 1, 1]), in fp32.
  at::Tensor rope(const at::Tensor& x, const at::Tensor& pos) const {
    const int64_t K = x.size(-1), half = K / 2;
    const at::Tensor inv_freq =
        at::pow(c_.rope_theta, -at::arange(0, K, 2, pos.options()) / static_cast<double>(K));  // [K/2]
    const at::Tensor ang = pos * inv_freq, cos = ang.cos(), sin = ang.sin();
    const at::Tensor xf = x.to(at::kFloat), x1 = xf.narrow(-1, 0, half), x2 = xf.narrow(-1, half, half);
    return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1).to(x.scalar_type());
  }
  static ops::LinearAttentionOptions options() { return {ops::Decay::fixed}; }

  RetNetConfig c_;
  int64_t H_, key_dim_, value_dim_;
  at::Tensor log_gamma_;  // [H] log γ_h (a constant, not a parameter)
};

}  // namespace

std::unique_ptr<LinearBlock> make_retnet(const RetNetConfig& c, uint64_t seed) {
  return std::make_unique<RetNet>(c, seed);
}

}  // namespace jet::model
