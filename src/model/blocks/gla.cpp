// Gated linear attention as fla's GatedLinearAttention layer (defaults: no short conv, output gate
// with swish, fused norm): q, k, v = x W; per-channel log decay gk = logsigmoid(W_2 W_1 x + b_2) / 16
// (gk_proj, low rank 16); additive update with vector decay, scale K^-1/2;
// o = o_proj(RMSNorm(o) · SiLU(x W_g)) with the norm named g_norm_swish_gate.
#include <ATen/ATen.h>

#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/linear_attention/linear_attention.h"

namespace jet::model {
namespace {

class GLA final : public LinearBlock {
 public:
  GLA(const GLAConfig& c, uint64_t seed) : c_(c) {
    const int64_t D = c.hidden_size;
    H_ = c.num_heads;
    key_dim_ = static_cast<int64_t>(D * c.expand_k);
    value_dim_ = static_cast<int64_t>(D * c.expand_v);
    JET_CHECK(key_dim_ % H_ == 0 && value_dim_ % H_ == 0, "gla block: key/value dims {}/{} not divisible by {} heads",
              key_dim_, value_dim_, H_);
    Init init(seed);
    add("q_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("k_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("v_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("g_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("gk_proj.0.weight", init.normal({c.gate_low_rank_dim, D}, c.init_std));
    add("gk_proj.1.weight", init.normal({key_dim_, c.gate_low_rank_dim}, c.init_std));
    add("gk_proj.1.bias", init.zeros({key_dim_}));
    add("g_norm_swish_gate.weight", init.ones({value_dim_ / H_}));
    add("o_proj.weight", init.normal({D, value_dim_}, c.init_std));
  }

  std::string type() const override { return "gla"; }

  BlockState init_state(int64_t batch) const override {
    BlockState s;
    s.S = at::zeros({batch, H_, key_dim_ / H_, value_dim_ / H_}, act_options().dtype(at::kFloat));
    return s;
  }

  at::Tensor forward(const at::Tensor& x, BlockState* state) override {
    const Proj pr = project(x);
    ops::LinearAttentionOutput la = ops::linear_attention_chunked(
        {pr.q, pr.k, pr.v, pr.gk, at::Tensor(), state ? state->S : at::Tensor(), at::Tensor()}, options());
    if (state) {
      state->S = la.final_state;
      state->offset += x.size(1);
    }
    return norm_gate_out(la.o, x, "g_norm_swish_gate.weight", c_.norm_eps);
  }

  at::Tensor step(const at::Tensor& x, BlockState& state) override {
    c10::NoGradGuard no_grad;
    const Proj pr = project(x);
    const at::Tensor o = ops::linear_attention_step(pr.q, pr.k, pr.v, pr.gk, at::Tensor(), state.S, options());
    state.offset += 1;
    return norm_gate_out(o, x, "g_norm_swish_gate.weight", c_.norm_eps);
  }

 private:
  struct Proj {
    at::Tensor q, k, v, gk;  // [..., H, K|V]; gk fp32 log decay
  };
  Proj project(const at::Tensor& x) const {
    Proj r;
    r.q = split_heads(linear(x, "q_proj.weight"), H_);
    r.k = split_heads(linear(x, "k_proj.weight"), H_);
    r.v = split_heads(linear(x, "v_proj.weight"), H_);
    const at::Tensor gk = linear(linear(x, "gk_proj.0.weight"), "gk_proj.1.weight", "gk_proj.1.bias");
    r.gk = split_heads(at::log_sigmoid(gk.to(at::kFloat)) / c_.gate_logit_normalizer, H_);
    return r;
  }
  static ops::LinearAttentionOptions options() { return {ops::Decay::vector}; }

  GLAConfig c_;
  int64_t H_, key_dim_, value_dim_;
};

}  // namespace

std::unique_ptr<LinearBlock> make_gla(const GLAConfig& c, uint64_t seed) { return std::make_unique<GLA>(c, seed); }

}  // namespace jet::model
