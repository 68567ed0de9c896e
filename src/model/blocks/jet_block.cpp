// JetBlock (Jet-Nemotron): q = SiLU(x W_q), k = SiLU(x W_k), v = SiLU(dynamic_conv(x W_v, κ(x))) with
// per-token kernels κ = W_2 SiLU(W_1 x) + b_2; β = σ(x W_b); g = −exp(A_log)·softplus(x W_a + dt_bias);
// Gated DeltaNet with q/k L2 norm; o = o_proj(RMSNorm_head(o) · SiLU(x W_g)).
// Init as the official layer: W_1, W_2 zero and b_2 ~ N(0, initializer_range) (a random static conv at
// start), A_log = log U(0, 16), dt_bias = softplus⁻¹(dt). (The HF model's _init_weights would later
// re-draw every Linear including W_1/W_2; we follow the layer's own init as the brief asks.)
#include <ATen/ATen.h>

#include <tuple>

#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/gates/delta_gates.h"
#include "ops/linear_attention/linear_attention.h"
#ifdef JET_CUDA
#include <c10/cuda/CUDAGraphsC10Utils.h>

#include <cmath>
#include <vector>

#include "ops/linear_attention/linear_attention_step_cuda.h"
#include "ops/norms/norms.h"
#endif

namespace jet::model {
namespace {

class JetBlock final : public LinearBlock {
 public:
  JetBlock(const JetBlockConfig& c, uint64_t seed) : c_(c) {
    H_ = c.num_heads;
    K_ = c.head_dim;
    key_dim_ = H_ * K_;
    value_dim_ = static_cast<int64_t>(key_dim_ * c.expand_v);
    // Like the reference: int() truncation, accepted when within 1e-5 relative of the exact product
    // (the 2B config has expand_v = 2.6666666667 with head_dim 96).
    JET_CHECK(close_to_integer(key_dim_ * c.expand_v) && close_to_integer(K_ * c.expand_v) && value_dim_ % H_ == 0,
              "jet block: expand_v {} gives no integer value head width", c.expand_v);
    V_ = value_dim_ / H_;
    const int64_t D = c.hidden_size, W = c.conv_size, gen_hidden = value_dim_ / c.dconv_generator_reduction;
    JET_CHECK(gen_hidden > 0, "jet block: dconv_generator_reduction {} too large", c.dconv_generator_reduction);
    Init init(seed);
    add("q_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("k_proj.weight", init.normal({key_dim_, D}, c.init_std));
    add("v_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("b_proj.weight", init.normal({H_, D}, c.init_std));
    add("a_proj.weight", init.normal({H_, D}, c.init_std));
    add("A_log", init.a_log(H_, 0.0, 16.0));
    add("dt_bias", init.dt_bias(H_));
    add("dynamic_conv1d.kernel_generator.w1.weight", init.zeros({gen_hidden, D}));
    add("dynamic_conv1d.kernel_generator.w2.weight", init.zeros({value_dim_ * W, gen_hidden}));
    add("dynamic_conv1d.kernel_generator.w2.bias", init.normal({value_dim_ * W}, c.init_std));
    add("g_proj.weight", init.normal({value_dim_, D}, c.init_std));
    add("o_norm.weight", init.ones({V_}));
    add("o_proj.weight", init.normal({D, value_dim_}, c.init_std));
  }

  std::string type() const override { return "jet"; }

  BlockState init_state(int64_t batch) const override {
    const at::TensorOptions o = act_options();
    BlockState s;
    s.S = at::zeros({batch, H_, K_, V_}, o.dtype(at::kFloat));
    s.conv = {at::zeros({batch, value_dim_, c_.conv_size - 1}, o)};
    return s;
  }

  at::Tensor forward(const at::Tensor& x, BlockState* state) override {
    const Proj pr = project(x);  // [B, T, ...]
    const at::Tensor tail = state ? state->conv[0] : at::Tensor();
    const at::Tensor v = ops::dynamic_conv(pr.v_raw, pr.kernels, tail, true, pr.kernel_bias);
    ops::LinearAttentionInput in{pr.q, pr.k, split_heads(v, H_), pr.g, pr.beta,
                                 state ? state->S : at::Tensor(), at::Tensor()};
    ops::LinearAttentionOutput la = ops::linear_attention_chunked(in, options());
    if (state) {
      state->S = la.final_state;
      state->conv[0] = ops::conv_tail_after(pr.v_raw, tail, c_.conv_size);
      state->offset += x.size(1);
    }
    return norm_gate_out(la.o, x, "o_norm.weight", c_.norm_eps, pr.gate);
  }

  at::Tensor step(const at::Tensor& x, BlockState& state) override {
    c10::NoGradGuard no_grad;
#ifdef JET_CUDA
    if (x.is_cuda()) return step_cuda(x, state);
#endif
    const Proj pr = project(x);  // [B, ...]
    const at::Tensor v = ops::dynamic_conv_step(pr.v_raw, pr.kernels + pr.kernel_bias, state.conv[0], true);
    const at::Tensor o = ops::linear_attention_step(pr.q, pr.k, split_heads(v, H_), pr.g, pr.beta, state.S, options());
    state.offset += 1;
    return norm_gate_out(o, x, "o_norm.weight", c_.norm_eps, pr.gate);
  }

  // One GEMM for q, k, v, g, a, b and the kernel generator's w1 (packed on first use), SiLU, w2 (+ bias), the dynamic
  // conv of v, then the shared delta-rule tail.
  bool step_cpu(const float* x, int64_t B, BlockState& state, float* out) override {
    const std::vector<const ops::QWeight*> in = qweights(kInputs);
    const ops::QWeight& w2 = q("dynamic_conv1d.kernel_generator.w2.weight");
    if (in.empty() || !w2.defined() || !q("o_proj.weight").defined() || !cpu_state_fits(state, B)) return false;
    const int64_t D = c_.hidden_size, W = c_.conv_size, gen = w2.cols, HK = key_dim_, HV = value_dim_;
    const DeltaRows r{ops::cpu::scratch(0, B * (2 * HK + 2 * HV + 2 * H_ + gen)), 2 * HK + 2 * HV + 2 * H_ + gen,
                      0, HK, 2 * HK, 2 * HK + 2 * HV, 2 * HK + 2 * HV + H_, 2 * HK + HV};
    const int64_t hid = r.b + H_;
    ops::qmatmul_out(x, B, D, in, r.y, r.ld);
    float* kernels = ops::cpu::scratch(2, B * HV * W);
    for (int64_t b = 0; b < B; ++b) ops::cpu::silu(r.y + b * r.ld + hid, gen, r.y + b * r.ld + hid);
    ops::qmatmul_out(r.y + hid, B, r.ld, w2, kernels, HV * W);
    const float* bias = raw("dynamic_conv1d.kernel_generator.w2.bias");
    float* tail = state.conv[0].data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
      float* row = r.y + b * r.ld;
      float* kb = kernels + b * HV * W;
      for (int64_t i = 0; i < HV * W; ++i) kb[i] += bias[i];
      ops::cpu::conv_step(row + r.v, kb, nullptr, HV, W, tail + b * HV * (W - 1), true, row + r.v);
      ops::cpu::silu(row, 2 * HK, row);  // q, k
    }
    gated_delta_rows_cpu(r, B, H_, K_, V_, c_.norm_eps, state, out);
    return true;
  }

 private:
  // Every projection of x, in the order of their one concatenated GEMM (input_weight(), step_cpu's qmatmul).
  static inline const std::vector<std::string> kInputs = {"q_proj.weight", "k_proj.weight", "v_proj.weight",
                                                          "g_proj.weight", "a_proj.weight", "b_proj.weight",
                                                          "dynamic_conv1d.kernel_generator.w1.weight"};

  struct Proj {
    at::Tensor q, k;     // [..., H, K]
    at::Tensor v_raw;    // [..., H·V] before the conv
    at::Tensor kernels;      // [..., H·V, W] W_2 SiLU(W_1 x), without the bias b_2
    at::Tensor kernel_bias;  // [H·V, W] b_2 (the conv adds it: its gradient is summed inside the conv's backward)
    at::Tensor g, beta;  // [..., H] fp32
    at::Tensor gate;     // [..., H·V] x W_g, the output gate before its SiLU
  };

  // Everything computed token-wise from x [..., D]: the projections in one GEMM where input_weight() gives one
  // weight, else one GEMM each.
  Proj project(const at::Tensor& x) {
    at::Tensor q, k, v, g, a, b, hid;
    const at::Tensor w = input_weight(x);
    if (w.defined()) {
      // split_with_sizes, not narrow: the backward joins the slices' gradients in one cat (a narrow's backward
      // would zero-fill a full-width gradient per slice, then add them).
      const int64_t gen = value_dim_ / c_.dconv_generator_reduction;
      const std::vector<at::Tensor> y =
          dense(x, w).split_with_sizes({key_dim_, key_dim_, value_dim_, value_dim_, H_, H_, gen}, -1);
      q = y[0], k = y[1], v = y[2], g = y[3], a = y[4], b = y[5], hid = y[6];
    } else {
      at::Tensor* outs[] = {&q, &k, &v, &g, &a, &b, &hid};
      for (size_t i = 0; i < kInputs.size(); ++i) *outs[i] = linear(x, kInputs[i]);
    }
    Proj r;
    r.q = split_heads(at::silu(q), H_);
    r.k = split_heads(at::silu(k), H_);
    r.v_raw = v;
    r.kernels = linear(at::silu(hid), "dynamic_conv1d.kernel_generator.w2.weight").unflatten(-1, {value_dim_, c_.conv_size});
    r.kernel_bias = p("dynamic_conv1d.kernel_generator.w2.bias").view({value_dim_, c_.conv_size});
    std::tie(r.g, r.beta) = ops::delta_gates(a, b, p("A_log"), p("dt_bias"));
    r.gate = g;
    return r;
  }

  // The weights of every projection of x concatenated [Σ widths, D] (kInputs order) for one GEMM: while autograd
  // records and a parameter needs a gradient, an at::cat of the parameters per call (autograd hands each its slice of the
  // gradient; the parameters stay separate tensors that an optimizer updates in place); for CUDA inference the
  // cached buffer of fused_input_weight(); else undefined (separate GEMMs: a quantized weight, CPU inference).
  at::Tensor input_weight(const at::Tensor& x) {
    std::vector<at::Tensor> ws;
    bool grad = false;
    for (const std::string& name : kInputs) {
      const at::Tensor& t = p(name);
      if (!t.defined() || t.device() != x.device()) return {};
      grad = grad || t.requires_grad();
      ws.push_back(t);
    }
    if (grad && c10::GradMode::is_enabled()) return at::cat(ws, 0);
#ifdef JET_CUDA
    if (x.is_cuda()) return fused_input_weight(x);
#endif
    return {};
  }

#ifdef JET_CUDA
  // Decode on CUDA in seven kernels: one GEMM for every projection of x (q, k, v, g, a, b and the kernel
  // generator's w1), SiLU, the generator's second GEMM, the core (jet_block_step_cuda: a prologue kernel for
  // conv + SiLU + gates, then the gated-delta-rule state kernel), the fused output gate
  // (gated_rms_norm_step_cuda) and o_proj.
  at::Tensor step_cuda(const at::Tensor& x, BlockState& state) {  // x [B, D]
    at::Tensor& tail = state.conv[0];  // [B, H·V, W−1]
    if (!tail.is_contiguous() || tail.scalar_type() != x.scalar_type()) tail = tail.to(x.scalar_type()).contiguous();
    if (!state.S.is_contiguous()) state.S = state.S.contiguous();
    const int64_t B = x.size(0), gen = value_dim_ / c_.dconv_generator_reduction;
    const at::Tensor w = fused_input_weight(x);
    at::Tensor q, k, v, g, a, b, hid;
    if (w.defined()) {
      const at::Tensor y = dense(x, w);  // [B, Σ widths], in kInputs order
      int64_t off = 0;
      auto take = [&](int64_t n) { return y.narrow(1, (off += n) - n, n); };
      q = take(key_dim_), k = take(key_dim_), v = take(value_dim_), g = take(value_dim_), a = take(H_), b = take(H_);
      hid = take(gen);
    } else {
      q = dense(x, p("q_proj.weight")), k = dense(x, p("k_proj.weight")), v = dense(x, p("v_proj.weight"));
      g = dense(x, p("g_proj.weight")), a = dense(x, p("a_proj.weight")), b = dense(x, p("b_proj.weight"));
      hid = dense(x, p("dynamic_conv1d.kernel_generator.w1.weight"));
    }
    const at::Tensor kernels =
        dense(at::silu(hid), p("dynamic_conv1d.kernel_generator.w2.weight"), p("dynamic_conv1d.kernel_generator.w2.bias"))
            .unflatten(-1, {value_dim_, c_.conv_size});  // [B, H·V, W]
    const at::Tensor o = ops::jet_block_step_cuda(q.view({B, H_, K_}), k.view({B, H_, K_}), v, kernels, tail, a, b,
                                                  p("A_log"), p("dt_bias"), state.S,
                                                  1.0 / std::sqrt(static_cast<double>(K_)));
    state.offset += 1;
    const at::Tensor norm = p("o_norm.weight");
    const at::Tensor n = norm.scalar_type() == at::kFloat && x.scalar_type() == o.scalar_type()
                             ? ops::gated_rms_norm_step_cuda(o, g, norm, c_.norm_eps)
                             : merge_heads(ops::gated_rms_norm(o, split_heads(g, H_), norm, c_.norm_eps, true));
    return dense(n.to(x.scalar_type()), p("o_proj.weight"));
  }

  // The weights of every projection of x, concatenated [Σ widths, D], for the decode GEMM. The parameters
  // themselves become views into this one buffer (no second copy; an in-place update of a parameter is an
  // update of the buffer); it is rebuilt when a parameter was replaced (set(), a loader, to()). Undefined
  // (separate GEMMs) while parameters need gradients or a CUDA graph is being captured before the first
  // build, and when the weights differ in dtype or device from x.
  at::Tensor fused_input_weight(const at::Tensor& x) {
    bool views = fused_.defined(), usable = true;
    int64_t rows = 0;
    for (const std::string& name : kInputs) {
      const at::Tensor& t = p(name);
      usable = usable && !t.requires_grad() && t.scalar_type() == x.scalar_type() && t.device() == x.device();
      views = views && t.defined() && fused_.defined() && t.is_contiguous() && t.scalar_type() == fused_.scalar_type() &&
              t.device() == fused_.device() &&
              t.data_ptr() == static_cast<const char*>(fused_.data_ptr()) + rows * t.size(1) * t.element_size();
      rows += t.size(0);
    }
    if (!usable) return {};
    if (views && fused_.size(0) == rows) return fused_;
    if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None) return {};
    // A normal tensor even when called under InferenceMode, and parameters that are detached views of it:
    // they can still be trained later (requires_grad_, autograd, in-place optimizer updates).
    c10::InferenceMode normal(false);
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> ws;
    for (const std::string& name : kInputs) ws.push_back(p(name));
    fused_ = at::cat(ws, 0);
    rows = 0;
    for (const std::string& name : kInputs) {
      const int64_t n = p(name).size(0);
      set(name, fused_.narrow(0, rows, n).detach());
      rows += n;
    }
    return fused_;
  }

  at::Tensor fused_;  // see fused_input_weight
#endif

  static ops::LinearAttentionOptions options() { return {ops::Decay::scalar, /*delta=*/true, /*qk_l2norm=*/true}; }

  JetBlockConfig c_;
  int64_t H_, K_, V_, key_dim_, value_dim_;
};

}  // namespace

std::unique_ptr<LinearBlock> make_jet_block(const JetBlockConfig& c, uint64_t seed) {
  return std::make_unique<JetBlock>(c, seed);
}

}  // namespace jet::model
