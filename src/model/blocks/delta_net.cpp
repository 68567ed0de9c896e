// DeltaNet as fla's DeltaNet layer (defaults: qk_activation silu, qk_norm l2, use_beta, short convs):
// q, k, v = SiLU(short_conv(x W)), β = σ(x W_b), the delta rule without decay and with q/k L2 norm,
// o = o_proj(RMSNorm(o)) (times SiLU(x W_g) with use_gate).
#include <ATen/ATen.h>

#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/linear_attention/linear_attention.h"

namespace jet::model {
namespace {

class DeltaNet final : public LinearBlock {
 public:
  DeltaNet(const DeltaNetConfig& c, uint64_t seed) : c_(c) {
    const int64_t D = c.hidden_size, W = c.conv_size;
    H_ = c.num_heads;
    key_dim_ = static_cast<int64_t>(D * c.expand_k);
    value_dim_ = static_cast<int64_t>(D * c.expand_v);
    JET_CHECK(key_dim_ % H_ == 0 && value_dim_ % H_ == 0, "deltanet block: key/value dims {}/{} not divisible by {} heads",
              key_dim_, value_dim_, H_);
    Init init(seed);
    add("q_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("k_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("v_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("b_proj.weight", init.normal({H_, D}, c.init_std));
    for (const char* n : {"q", "k", "v"}) {
      const int64_t C = std::string(n) == "v" ? value_dim_ : key_dim_;
      add(std::string(n) + "_conv1d.weight", init.conv_weight(C, W));
      if (c.conv_bias) add(std::string(n) + "_conv1d.bias", init.conv_bias(C, W));
    }
    if (c.use_gate) add("g_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("o_norm.weight", init.ones({value_dim_ / H_}));
    add("o_proj.weight", init.normal({D, value_dim_}, c.init_std));
  }

  std::string type() const override { return "deltanet"; }

  BlockState init_state(int64_t batch) const override {
    const at::TensorOptions o = act_options();
    const int64_t W1 = c_.conv_size - 1;
    BlockState s;
    s.S = at::zeros({batch, H_, key_dim_ / H_, value_dim_ / H_}, o.dtype(at::kFloat));
    s.conv = {at::zeros({batch, key_dim_, W1}, o), at::zeros({batch, key_dim_, W1}, o),
              at::zeros({batch, value_dim_, W1}, o)};
    return s;
  }

  at::Tensor forward(const at::Tensor& x, BlockState* state) override {
    return conv_qkv_forward(x, state, H_, at::Tensor(), beta(x), options(), c_.norm_eps);
  }

  at::Tensor step(const at::Tensor& x, BlockState& state) override {
    c10::NoGradGuard no_grad;
    return conv_qkv_step(x, state, H_, at::Tensor(), beta(x), options(), c_.norm_eps);
  }

 private:
  at::Tensor beta(const at::Tensor& x) const { return at::sigmoid(linear(x, "b_proj.weight")); }
  static ops::LinearAttentionOptions options() { return {ops::Decay::none, /*delta=*/true, /*qk_l2norm=*/true}; }

  DeltaNetConfig c_;
  int64_t H_, key_dim_, value_dim_;
};

}  // namespace

std::unique_ptr<LinearBlock> make_deltanet(const DeltaNetConfig& c, uint64_t seed) {
  return std::make_unique<DeltaNet>(c, seed);
}

}  // namespace jet::model
