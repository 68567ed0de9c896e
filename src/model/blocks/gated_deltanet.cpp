// Gated DeltaNet as fla's GatedDeltaNet layer: q, k, v = SiLU(short_conv(x W)) (SiLU short convs on
// all three), β = σ(x W_b), g = −exp(A_log)·softplus(x W_a + dt_bias), the gated delta rule with q/k L2
// norm, o = o_proj(RMSNorm(o) · SiLU(x W_g)) (plain RMSNorm without use_gate).
// Init: A_log = log U(0, 16), dt_bias = softplus⁻¹(dt) as in the layer; GVA (num_v_heads) is not used.
#include <ATen/ATen.h>

#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/gates/delta_gates.h"
#include "ops/linear_attention/linear_attention.h"

namespace jet::model {
namespace {

class GatedDeltaNet final : public LinearBlock {
 public:
  GatedDeltaNet(const GatedDeltaNetConfig& c, uint64_t seed) : c_(c) {
    H_ = c.num_heads;
    K_ = c.head_dim;
    V_ = static_cast<int64_t>(K_ * c.expand_v);
    JET_CHECK(close_to_integer(K_ * c.expand_v), "gdn block: head_dim {} × expand_v {} is not an integer", K_,
              c.expand_v);
    const int64_t D = c.hidden_size, W = c.conv_size;
    Init init(seed);
    add("q_proj.weight", init.normal({H_ * K_, D}, c.init_std));
    add("k_proj.weight", init.normal({H_ * K_, D}, c.init_std));
    add("v_proj.weight", init.normal({H_ * V_, D}, c.init_std));
    add("a_proj.weight", init.normal({H_, D}, c.init_std));
    add("b_proj.weight", init.normal({H_, D}, c.init_std));
    add("A_log", init.a_log(H_, 0.0, 16.0));
    add("dt_bias", init.dt_bias(H_));
    for (const char* n : {"q", "k", "v"}) {
      const int64_t C = std::string(n) == "v" ? H_ * V_ : H_ * K_;
      add(std::string(n) + "_conv1d.weight", init.conv_weight(C, W));
      if (c.conv_bias) add(std::string(n) + "_conv1d.bias", init.conv_bias(C, W));
    }
    if (c.use_gate) add("g_proj.weight", init.normal({H_ * V_, D}, c.init_std));
    add("o_norm.weight", init.ones({V_}));
    add("o_proj.weight", init.normal({D, H_ * V_}, c.init_std));
  }

  std::string type() const override { return "gdn"; }

  BlockState init_state(int64_t batch) const override {
    const at::TensorOptions o = act_options();
    const int64_t W1 = c_.conv_size - 1;
    BlockState s;
    s.S = at::zeros({batch, H_, K_, V_}, o.dtype(at::kFloat));
    s.conv = {at::zeros({batch, H_ * K_, W1}, o), at::zeros({batch, H_ * K_, W1}, o), at::zeros({batch, H_ * V_, W1}, o)};
    return s;
  }

  at::Tensor forward(const at::Tensor& x, BlockState* state) override {
    const auto [g, beta] = gates(x);
    return conv_qkv_forward(x, state, H_, g, beta, options(), c_.norm_eps);
  }

  at::Tensor step(const at::Tensor& x, BlockState& state) override {
    c10::NoGradGuard no_grad;
    const auto [g, beta] = gates(x);
    return conv_qkv_step(x, state, H_, g, beta, options(), c_.norm_eps);
  }

  // One GEMM for q, k, v, a, b (and g), the SiLU short convs of q, k, v in place, then the shared delta-rule tail.
  bool step_cpu(const float* x, int64_t B, BlockState& state, float* out) override {
    static const std::vector<std::string> kInputs = {"q_proj.weight", "k_proj.weight", "v_proj.weight",
                                                     "a_proj.weight", "b_proj.weight", "g_proj.weight"};
    const std::vector<const ops::QWeight*> in =
        qweights(at::ArrayRef<std::string>(kInputs).slice(0, kInputs.size() - (c_.use_gate ? 0 : 1)));
    if (in.empty() || !q("o_proj.weight").defined() || !cpu_state_fits(state, B)) return false;
    const int64_t HK = H_ * K_, HV = H_ * V_, W = c_.conv_size;
    const int64_t ld = 2 * HK + HV + 2 * H_ + (c_.use_gate ? HV : 0);
    const DeltaRows r{ops::cpu::scratch(0, B * ld), ld, 0, HK, 2 * HK, 2 * HK + HV, 2 * HK + HV + H_,
                      c_.use_gate ? 2 * HK + HV + 2 * H_ : -1};
    ops::qmatmul_out(x, B, c_.hidden_size, in, r.y, r.ld);
    const char* convs[] = {"q", "k", "v"};
    const int64_t offsets[] = {r.q, r.k, r.v}, widths[] = {HK, HK, HV};
    for (int i = 0; i < 3; ++i) {
      const std::string n = convs[i];
      const float* taps = raw(n + "_conv1d.weight");
      const float* bias = c_.conv_bias ? raw(n + "_conv1d.bias") : nullptr;
      float* tail = state.conv[i].data_ptr<float>();
      for (int64_t b = 0; b < B; ++b) {
        float* y = r.y + b * ld + offsets[i];
        ops::cpu::conv_step(y, taps, bias, widths[i], W, tail + b * widths[i] * (W - 1), true, y);
      }
    }
    gated_delta_rows_cpu(r, B, H_, K_, V_, c_.norm_eps, state, out);
    return true;
  }

 private:
  // {log decay g, β} of x.
  std::pair<at::Tensor, at::Tensor> gates(const at::Tensor& x) const {
    return ops::delta_gates(linear(x, "a_proj.weight"), linear(x, "b_proj.weight"), p("A_log"), p("dt_bias"));
  }
  static ops::LinearAttentionOptions options() { return {ops::Decay::scalar, /*delta=*/true, /*qk_l2norm=*/true}; }

  GatedDeltaNetConfig c_;
  int64_t H_, K_, V_;
};

}  // namespace

std::unique_ptr<LinearBlock> make_gated_deltanet(const GatedDeltaNetConfig& c, uint64_t seed) {
  return std::make_unique<GatedDeltaNet>(c, seed);
}

}  // namespace jet::model
