// CUDA decode step of the linear-attention family vs the float64 reference (ops/linear_attention).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_step_cuda.h"
#include "ops/norms/norms.h"

namespace {

using jet::ops::Decay;
using jet::ops::StepDecay;

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  auto a64 = a.to(at::kCPU, at::kDouble), b64 = b.to(at::kCPU, at::kDouble);
  return ((a64 - b64).norm() / b64.norm().clamp_min(1e-30)).item<double>();
}

struct Case {
  Decay decay;
  bool delta;
  at::ScalarType dtype;
  int64_t K, V;
};

void run_case(const Case& c) {
  const int64_t B = 3, H = 2, T = 5;
  at::manual_seed(1234 + c.K + c.V);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  // Inputs rounded to the kernel's dtype first, so the reference sees exactly what the kernel sees.
  auto round = [&](at::Tensor t) { return t.to(c.dtype).to(at::kDouble); };
  auto q = round(at::randn({B, T, H, c.K}, f64)), k = round(at::randn({B, T, H, c.K}, f64));
  auto v = round(at::randn({B, T, H, c.V}, f64));
  at::Tensor g, beta;
  if (c.decay == Decay::scalar) g = -at::softplus(at::randn({B, T, H}, f64)).to(at::kFloat).to(at::kDouble);
  if (c.decay == Decay::vector)
    g = -0.1 * at::softplus(at::randn({B, T, H, c.K}, f64)).to(at::kFloat).to(at::kDouble);
  if (c.delta) beta = at::sigmoid(at::randn({B, T, H}, f64)).to(at::kFloat).to(at::kDouble);
  auto s0 = at::randn({B, H, c.K, c.V}, f64).to(at::kFloat).to(at::kDouble);

  jet::ops::LinearAttentionOptions opt;
  opt.decay = c.decay;
  opt.delta = c.delta;
  opt.qk_l2norm = true;
  auto ref = jet::ops::linear_attention_ref({q, k, v, g, beta, s0, {}}, opt);

  auto cuda = [&](const at::Tensor& t, at::ScalarType dt) { return t.to(at::kCUDA, dt); };
  auto state = cuda(s0, at::kFloat).contiguous();
  const StepDecay sd = c.decay == Decay::none     ? StepDecay::none
                       : c.decay == Decay::vector ? StepDecay::vector
                                                  : StepDecay::scalar;
  const double scale = 1.0 / std::sqrt(double(c.K));
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < T; ++t) {
    auto sel = [&](const at::Tensor& x) { return x.defined() ? x.select(1, t) : x; };
    auto gt = sel(g), bt = sel(beta);
    outs.push_back(jet::ops::linear_attention_step_cuda(
        cuda(sel(q), c.dtype), cuda(sel(k), c.dtype), cuda(sel(v), c.dtype),
        gt.defined() ? cuda(gt, at::kFloat) : gt, bt.defined() ? cuda(bt, at::kFloat) : bt, state, sd,
        scale, true));
  }
  auto o = at::stack(outs, 1);
  const double tol_o = c.dtype == at::kFloat ? 1e-5 : 1e-2, tol_s = 1e-5;
  const double eo = rel_err(o, ref.o), es = rel_err(state, ref.final_state);
  EXPECT_LT(eo, tol_o) << "output K=" << c.K << " V=" << c.V;
  EXPECT_LT(es, tol_s) << "state K=" << c.K << " V=" << c.V;
  EXPECT_FALSE(o.isnan().any().item<bool>());
}

}  // namespace

TEST(LinearAttentionStepCuda, MatchesFloat64Reference) {
  for (auto dt : {at::kFloat, at::kBFloat16})
    for (auto decay : {Decay::none, Decay::scalar, Decay::vector})
      for (bool delta : {false, true})
        for (auto kv : std::vector<std::pair<int64_t, int64_t>>{{64, 64}, {96, 256}, {128, 100}, {32, 17}, {64, 132}})
          run_case({decay, delta, dt, kv.first, kv.second});
}

TEST(LinearAttentionStepCuda, RejectsBadShapes) {
  auto o = at::TensorOptions().device(at::kCUDA);
  auto q = at::randn({2, 3, 64}, o), v = at::randn({2, 3, 32}, o);
  auto bad_state = at::zeros({2, 3, 64, 31}, o);
  EXPECT_THROW(jet::ops::linear_attention_step_cuda(q, q, v, {}, {}, bad_state, StepDecay::none, 0.125, false),
               std::exception);
  auto q48 = at::randn({2, 3, 48}, o);
  auto st48 = at::zeros({2, 3, 48, 32}, o);
  EXPECT_THROW(jet::ops::linear_attention_step_cuda(q48, q48, v, {}, {}, st48, StepDecay::none, 0.125, false),
               std::exception);
}

// The JetBlock step (prologue kernel + state kernel) == SiLU(q, k) + dynamic_conv_step + gates + gated
// delta rule (float64 refs),
// with q, k, v, a, b given as separate contiguous tensors or (as JetBlock's decode passes them) as views
// into one wider [B, ·] matrix with a row stride.
// V = 80 takes the one-column-per-lane kernel, V = 256 the four-column (128-bit) one.
TEST(LinearAttentionStepCuda, JetBlockStepMatchesComposedReference) {
  for (int64_t V : {80, 256})
  for (auto dt : {at::kFloat, at::kBFloat16})
  for (bool strided : {false, true}) {
    const int64_t B = 2, H = 3, K = 96, W = 4, T = 6;
    at::manual_seed(7);
    auto f64 = at::TensorOptions().dtype(at::kDouble);
    auto round = [&](at::Tensor t) { return t.to(dt).to(at::kDouble); };
    auto q = round(at::randn({B, T, H, K}, f64)), k = round(at::randn({B, T, H, K}, f64));
    auto vraw = round(at::randn({B, T, H * V}, f64)), kern = round(0.5 * at::randn({B, T, H * V, W}, f64));
    auto a = round(at::randn({B, T, H}, f64)), b = round(at::randn({B, T, H}, f64));
    auto A_log = at::log(at::rand({H}, f64) * 16 + 0.5).to(at::kFloat).to(at::kDouble);
    auto dt_bias = at::randn({H}, f64).to(at::kFloat).to(at::kDouble);
    auto tail0 = round(at::randn({B, H * V, W - 1}, f64));
    auto s0 = at::randn({B, H, K, V}, f64).to(at::kFloat).to(at::kDouble);

    // Reference: the unfused ops, float64.
    auto tail_ref = tail0.clone();
    std::vector<at::Tensor> vs;
    for (int64_t t = 0; t < T; ++t)
      vs.push_back(jet::ops::dynamic_conv_step(vraw.select(1, t), kern.select(1, t), tail_ref, true));
    auto v = at::stack(vs, 1).view({B, T, H, V});
    auto g = -A_log.exp() * at::softplus(a + dt_bias);
    jet::ops::LinearAttentionOptions opt;
    opt.decay = Decay::scalar;
    opt.delta = true;
    opt.qk_l2norm = true;
    auto ref = jet::ops::linear_attention_ref({at::silu(q), at::silu(k), v, g, at::sigmoid(b), s0, {}}, opt);

    auto cu = [&](const at::Tensor& x) { return x.to(at::kCUDA, dt).contiguous(); };
    auto state = s0.to(at::kCUDA, at::kFloat).contiguous();
    auto tail = cu(tail0);
    auto Al = A_log.to(at::kCUDA, at::kFloat), db = dt_bias.to(at::kCUDA, at::kFloat);
    std::vector<at::Tensor> outs;
    for (int64_t t = 0; t < T; ++t) {
      std::vector<at::Tensor> in{q.select(1, t), k.select(1, t), vraw.select(1, t), a.select(1, t), b.select(1, t)};
      if (strided) {  // one [B, Σ + 7] matrix (7 spare columns, so no row is at an aligned multiple), then views
        std::vector<at::Tensor> flat;
        for (auto& x : in) flat.push_back(x.reshape({B, -1}));
        flat.push_back(at::zeros({B, 7}, f64));
        const at::Tensor wide = cu(at::cat(flat, 1));
        int64_t off = 0;
        for (auto& x : in) {
          const int64_t n = x.numel() / B;
          x = wide.narrow(1, off, n).view(x.sizes());
          off += n;
        }
        EXPECT_FALSE(in[0].is_contiguous());
      } else {
        for (auto& x : in) x = cu(x);
      }
      outs.push_back(jet::ops::jet_block_step_cuda(in[0], in[1], in[2], cu(kern.select(1, t)), tail, in[3], in[4],
                                                   Al, db, state, 1.0 / std::sqrt(double(K))));
    }
    auto o = at::stack(outs, 1);
    const double tol_o = dt == at::kFloat ? 1e-5 : 1e-2;
    EXPECT_LT(rel_err(o, ref.o), tol_o) << "dtype " << dt << " strided " << strided << " V " << V;
    // The prologue hands q, k, v, g, β to the state kernel in fp32 (not rounded to the input dtype), so
    // the state's error stays at fp32 level for bf16 inputs too.
    EXPECT_LT(rel_err(state, ref.final_state), 1e-5) << "dtype " << dt;
    EXPECT_LT(rel_err(tail, tail_ref), 1e-6) << "dtype " << dt;
  }
}

// JetBlock's decode output gate: RMSNorm over each head's V values, weight, SiLU(gate); the gate a view
// into a wider projection output (row stride ≠ H·V), as JetBlock passes it.
TEST(LinearAttentionStepCuda, GatedRmsNormStepMatchesReference) {
  for (auto dt : {at::kFloat, at::kBFloat16})
    for (auto hv : std::vector<std::pair<int64_t, int64_t>>{{12, 256}, {3, 80}, {2, 17}}) {
      const int64_t B = 5, H = hv.first, V = hv.second;
      at::manual_seed(99 + V);
      auto f64 = at::TensorOptions().dtype(at::kDouble);
      auto round = [&](at::Tensor t) { return t.to(dt).to(at::kDouble); };
      auto o = round(3 * at::randn({B, H, V}, f64)), gate = round(at::randn({B, H * V}, f64));
      auto w = (1 + 0.1 * at::randn({V}, f64)).to(at::kFloat).to(at::kDouble);
      auto ref = jet::ops::gated_rms_norm_ref(o, gate.view({B, H, V}), w, 1e-5, true).reshape({B, H * V});
      auto wide = at::cat({at::randn({B, 5}, f64), gate, at::randn({B, 3}, f64)}, 1).to(at::kCUDA, dt);
      auto y = jet::ops::gated_rms_norm_step_cuda(o.to(at::kCUDA, dt), wide.narrow(1, 5, H * V),
                                                  w.to(at::kCUDA, at::kFloat), 1e-5);
      EXPECT_EQ(y.scalar_type(), dt);
      EXPECT_LT(rel_err(y, ref), dt == at::kFloat ? 1e-5 : 1e-2) << "dtype " << dt << " H " << H << " V " << V;
    }
}
