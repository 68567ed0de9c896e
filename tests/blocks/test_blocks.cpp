// The six linear blocks: prefill N + M recurrent steps == one chunked forward of N + M (outputs,
// S, conv tails), chunked forward continued from a state == one pass, token-by-token recurrence from
// zero == chunked, gradients reach every parameter, seeded init, official parameter names.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../ops/test_util.h"
#include "jet_formulas.h"
#include "core/check.h"
#include "model/blocks/blocks.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/norms/norms.h"
#include "ops/short_conv/short_conv.h"

namespace jet::model {
namespace {

using test::rel_err;

constexpr double kTol = 1e-4;  // fp32 chunked vs fp32 recurrent path: outputs, S, conv tails
constexpr int64_t D = 32;

struct Case {
  std::string name;
  std::function<std::unique_ptr<LinearBlock>(uint64_t)> make;
};

std::vector<Case> cases() {
  JetBlockConfig jet;
  jet.hidden_size = D, jet.num_heads = 2, jet.head_dim = 8, jet.expand_v = 2.0, jet.dconv_generator_reduction = 8;
  GatedDeltaNetConfig gdn;
  gdn.hidden_size = D, gdn.num_heads = 2, gdn.head_dim = 8, gdn.expand_v = 2.0;
  DeltaNetConfig dn;
  dn.hidden_size = D, dn.num_heads = 4, dn.conv_bias = true;
  GLAConfig gla;
  gla.hidden_size = D, gla.num_heads = 2, gla.gate_low_rank_dim = 4;
  RetNetConfig ret;
  ret.hidden_size = D, ret.num_heads = 2, ret.expand_k = 0.5;
  Mamba2Config m2;
  m2.hidden_size = D, m2.head_dim = 16, m2.state_size = 8, m2.n_groups = 2;
  return {{"jet", [=](uint64_t s) { return make_jet_block(jet, s); }},
          {"gdn", [=](uint64_t s) { return make_gated_deltanet(gdn, s); }},
          {"deltanet", [=](uint64_t s) { return make_deltanet(dn, s); }},
          {"gla", [=](uint64_t s) { return make_gla(gla, s); }},
          {"retnet", [=](uint64_t s) { return make_retnet(ret, s); }},
          {"mamba2", [=](uint64_t s) { return make_mamba2(m2, s); }}};
}

// A block with every parameter perturbed away from its structural init (zeros, ones) so that no path
// is trivially inactive (JetBlock's kernel generator starts at zero).
std::unique_ptr<LinearBlock> perturbed(const Case& c, uint64_t seed) {
  std::unique_ptr<LinearBlock> b = c.make(seed);
  at::Generator gen = test::seeded(seed + 1000);
  for (auto& [name, t] : b->parameters())
    if (name.find("kernel_generator") != std::string::npos || name.find("norm") != std::string::npos || name == "D")
      t = t + 0.1 * test::randn(t.sizes(), gen);
  return b;
}

void expect_state_near(const BlockState& a, const BlockState& b, const std::string& what) {
  EXPECT_LE(rel_err(a.S, b.S), kTol) << what << ": S";
  ASSERT_EQ(a.conv.size(), b.conv.size());
  for (size_t i = 0; i < a.conv.size(); ++i) EXPECT_LE(rel_err(a.conv[i], b.conv[i]), kTol) << what << ": conv " << i;
  EXPECT_EQ(a.offset, b.offset) << what;
}

void PrefillThenStepsEqualsOneForward(const Case& c) {
  c10::NoGradGuard no_grad;
  const auto block = perturbed(c, 11);
  const int64_t B = 2, N = 70, M = 6;
  at::Generator gen = test::seeded(5);
  const at::Tensor x = test::randn({B, N + M, D}, gen);
  BlockState full = block->init_state(B);
  const at::Tensor y = block->forward(x, &full);
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_LE(rel_err(block->forward(x, nullptr), y), 0.0) << "forward without state";

  BlockState st = block->init_state(B);
  EXPECT_LE(rel_err(block->forward(x.narrow(1, 0, N), &st), y.narrow(1, 0, N)), kTol) << "prefill";
  for (int64_t t = N; t < N + M; ++t) {
    const at::Tensor yt = block->step(x.select(1, t), st);
    EXPECT_LE(rel_err(yt, y.select(1, t)), kTol) << "step " << t;
  }
  expect_state_near(st, full, "prefill + steps");

  BlockState two = block->init_state(B);  // chunked continuation: forward N, then forward M from the state
  block->forward(x.narrow(1, 0, N), &two);
  EXPECT_LE(rel_err(block->forward(x.narrow(1, N, M), &two), y.narrow(1, N, M)), kTol) << "continued forward";
  expect_state_near(two, full, "two forwards");
}

void RecurrentFromZeroEqualsChunked(const Case& c) {
  c10::NoGradGuard no_grad;
  const auto block = perturbed(c, 12);
  const int64_t B = 2, T = 20;
  at::Generator gen = test::seeded(6);
  const at::Tensor x = test::randn({B, T, D}, gen);
  BlockState chunked = block->init_state(B), rec = block->init_state(B);
  const at::Tensor y = block->forward(x, &chunked);
  for (int64_t t = 0; t < T; ++t) EXPECT_LE(rel_err(block->step(x.select(1, t), rec), y.select(1, t)), kTol) << t;
  expect_state_near(rec, chunked, "recurrent");
  EXPECT_GT(chunked.S.abs().max().item<double>(), 0.0) << "state must be written";
}

void GradientsReachEveryParameter(const Case& c) {
  const auto block = perturbed(c, 13);
  for (auto& [name, t] : block->parameters()) t = t.detach().requires_grad_(true);
  at::Generator gen = test::seeded(7);
  const at::Tensor x = test::randn({2, 67, D}, gen).requires_grad_(true);
  (block->forward(x) * test::randn({2, 67, D}, gen)).sum().backward();
  EXPECT_TRUE(x.grad().defined() && at::isfinite(x.grad()).all().item<bool>());
  for (auto& [name, t] : block->parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_TRUE(at::isfinite(t.grad()).all().item<bool>()) << name;
    EXPECT_GT(t.grad().abs().max().item<double>(), 0.0) << name;
  }
}

void Bf16WeightsKeepFp32State(const Case& c) {
  c10::NoGradGuard no_grad;
  const auto ref = perturbed(c, 14), low = perturbed(c, 14);
  low->to(at::kCPU, at::kBFloat16);
  at::Generator gen = test::seeded(8);
  const at::Tensor x = test::randn({2, 9, D}, gen);
  BlockState sr = ref->init_state(2), sl = low->init_state(2);
  const at::Tensor yr = ref->forward(x, &sr), yl = low->forward(x.to(at::kBFloat16), &sl);
  EXPECT_EQ(yl.scalar_type(), at::kBFloat16);
  EXPECT_EQ(sl.S.scalar_type(), at::kFloat);
  EXPECT_LE(rel_err(yl, yr), 3e-2);  // bf16 weights and activations vs fp32
  EXPECT_LE(rel_err(sl.S, sr.S), 3e-2);
  const at::Tensor xt = test::randn({2, D}, gen);
  const at::Tensor tr = ref->step(xt, sr), tl = low->step(xt.to(at::kBFloat16), sl);
  EXPECT_EQ(tl.scalar_type(), at::kBFloat16);
  EXPECT_LE(rel_err(tl, tr), 3e-2);
}

void SeededInitIsDeterministic(const Case& c) {
  const auto a = c.make(3), b = c.make(3), other = c.make(4);
  ASSERT_EQ(a->parameters().size(), other->parameters().size());
  bool any_differs = false;
  for (size_t i = 0; i < a->parameters().size(); ++i) {
    EXPECT_TRUE(a->parameters()[i].second.equal(b->parameters()[i].second)) << a->parameters()[i].first;
    any_differs |= !a->parameters()[i].second.equal(other->parameters()[i].second);
  }
  EXPECT_TRUE(any_differs);
  EXPECT_EQ(a->type(), c.name);
}

// One process per property (ctest runs each test separately), looping over the six blocks.
TEST(Blocks, PrefillThenStepsEqualsOneForward) {
  test::SingleThread one_thread;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    PrefillThenStepsEqualsOneForward(c);
  }
}

TEST(Blocks, RecurrentFromZeroEqualsChunked) {
  test::SingleThread one_thread;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    RecurrentFromZeroEqualsChunked(c);
  }
}

TEST(Blocks, GradientsReachEveryParameter) {
  test::SingleThread one_thread;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    GradientsReachEveryParameter(c);
  }
}

TEST(Blocks, Bf16WeightsKeepFp32State) {
  test::SingleThread one_thread;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Bf16WeightsKeepFp32State(c);
  }
}

TEST(Blocks, SeededInitIsDeterministic) {
  test::SingleThread one_thread;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    SeededInitIsDeterministic(c);
  }
}

std::set<std::string> names_of(LinearBlock& b) {
  std::set<std::string> r;
  for (auto& [n, t] : b.parameters()) r.insert(n);
  return r;
}

TEST(JetBlock, OfficialNamesShapesAndInit) {
  JetBlockConfig c;
  c.hidden_size = 64, c.num_heads = 2, c.head_dim = 16, c.expand_v = 2.0, c.conv_size = 4;
  c.dconv_generator_reduction = 8, c.init_std = 0.02;
  const auto b = make_jet_block(c, 1);
  EXPECT_EQ(names_of(*b), (std::set<std::string>{"q_proj.weight", "k_proj.weight", "v_proj.weight", "b_proj.weight",
                                                 "a_proj.weight", "A_log", "dt_bias",
                                                 "dynamic_conv1d.kernel_generator.w1.weight",
                                                 "dynamic_conv1d.kernel_generator.w2.weight",
                                                 "dynamic_conv1d.kernel_generator.w2.bias", "g_proj.weight",
                                                 "o_norm.weight", "o_proj.weight"}));
  EXPECT_EQ(b->p("v_proj.weight").sizes(), at::IntArrayRef({64, 64}));
  EXPECT_EQ(b->p("dynamic_conv1d.kernel_generator.w1.weight").sizes(), at::IntArrayRef({8, 64}));
  EXPECT_EQ(b->p("dynamic_conv1d.kernel_generator.w2.weight").sizes(), at::IntArrayRef({256, 8}));
  EXPECT_EQ(b->p("o_norm.weight").sizes(), at::IntArrayRef({32}));
  EXPECT_EQ(b->p("dynamic_conv1d.kernel_generator.w1.weight").abs().max().item<float>(), 0.f);
  EXPECT_EQ(b->p("dynamic_conv1d.kernel_generator.w2.weight").abs().max().item<float>(), 0.f);
  const double bias_std = b->p("dynamic_conv1d.kernel_generator.w2.bias").std().item<double>();
  EXPECT_NEAR(bias_std, 0.02, 0.004);
  const at::Tensor A = b->p("A_log").exp();
  EXPECT_TRUE((A > 0).all().item<bool>() && (A < 16).all().item<bool>());
  const at::Tensor dt = at::softplus(b->p("dt_bias"));
  EXPECT_TRUE((dt >= 1e-3 - 1e-6).all().item<bool>() && (dt <= 0.1 + 1e-6).all().item<bool>());
  const BlockState s = b->init_state(3);
  EXPECT_EQ(s.S.sizes(), at::IntArrayRef({3, 2, 16, 32}));
  EXPECT_EQ(s.S.scalar_type(), at::kFloat);
  ASSERT_EQ(s.conv.size(), 1u);
  EXPECT_EQ(s.conv[0].sizes(), at::IntArrayRef({3, 64, 3}));
  EXPECT_THROW(b->p("nope"), Error);
  EXPECT_THROW(b->set("o_norm.weight", at::ones({31})), Error);
}

TEST(JetBlock, ForwardMatchesOfficialFormulasInFloat64) {
  test::SingleThread one_thread;
  c10::NoGradGuard no_grad;
  const auto b = perturbed(cases()[0], 21);
  at::Generator gen = test::seeded(9);
  const at::Tensor x = test::randn({2, 19, D}, gen).to(at::kDouble);
  const at::Tensor want = test::jet_formulas(x, 2, 8, 16, [&](const char* n) { return b->p(n).to(at::kDouble); });
  EXPECT_LE(rel_err(b->forward(x.to(at::kFloat)), want), kTol);
}

// The training path (the projections in one GEMM, the fused gates and norms where they apply): the gradients of
// x and of every parameter against autograd through the float64 formulas.
TEST(JetBlock, TrainingGradientsMatchOfficialFormulasInFloat64) {
  test::SingleThread one_thread;
  const auto b = perturbed(cases()[0], 22);
  for (auto& [name, t] : b->parameters()) t = t.detach().requires_grad_(true);
  std::map<std::string, at::Tensor> ref;
  for (auto& [name, t] : b->parameters()) ref[name] = t.detach().to(at::kDouble).requires_grad_(true);
  at::Generator gen = test::seeded(10);
  const at::Tensor x = test::randn({2, 67, D}, gen), dy = test::randn({2, 67, D}, gen);
  const at::Tensor xf = x.clone().requires_grad_(true), xd = x.to(at::kDouble).requires_grad_(true);
  const at::Tensor y = b->forward(xf);
  (y * dy).sum().backward();
  const at::Tensor want = test::jet_formulas(xd, 2, 8, 16, [&](const char* n) { return ref.at(n); });
  (want * dy.to(at::kDouble)).sum().backward();
  EXPECT_LE(rel_err(y, want), kTol);
  EXPECT_LE(rel_err(xf.grad(), xd.grad()), kTol) << "dx";
  for (auto& [name, t] : b->parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_LE(rel_err(t.grad(), ref.at(name).grad()), kTol) << name;
  }
}

// Mamba2 against the selective-state-space recurrence of fla's decode path written out in float64
// (state [H, head_dim, state_size], group g of B/C serving heads g·H/G ..), not via the family op.
TEST(Mamba2Block, ForwardMatchesSsmRecurrenceInFloat64) {
  test::SingleThread one_thread;
  c10::NoGradGuard no_grad;
  const Case m2 = cases()[5];
  const auto b = perturbed(m2, 22);
  const int64_t Bn = 2, T = 9, I = 64, P = 16, N = 8, G = 2, H = I / P, W = 4, conv_dim = I + 2 * G * N;
  at::Generator gen = test::seeded(10);
  const at::Tensor x = test::randn({Bn, T, D}, gen).to(at::kDouble);
  auto Pm = [&](const char* n) { return b->p(n).to(at::kDouble); };
  const at::Tensor zxbcdt = at::matmul(x, Pm("in_proj.weight").t());
  const at::Tensor z = zxbcdt.narrow(-1, 0, I), dt_raw = zxbcdt.narrow(-1, I + conv_dim, H);
  const at::Tensor xbc = at::silu(ops::dynamic_conv_ref(zxbcdt.narrow(-1, I, conv_dim),
                                                       Pm("conv1d.weight").squeeze(1).expand({Bn, T, conv_dim, W}),
                                                       at::Tensor(), false) +
                                  Pm("conv1d.bias"));
  const at::Tensor A = -Pm("A_log").exp();
  at::Tensor state = at::zeros({Bn, H, P, N}, x.options());
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor xt = xbc.select(1, t).narrow(-1, 0, I).view({Bn, H, P});
    const at::Tensor Bt = xbc.select(1, t).narrow(-1, I, G * N).view({Bn, G, 1, N}).expand({Bn, G, H / G, N}).reshape({Bn, H, N});
    const at::Tensor Ct = xbc.select(1, t).narrow(-1, I + G * N, G * N).view({Bn, G, 1, N}).expand({Bn, G, H / G, N}).reshape({Bn, H, N});
    const at::Tensor dt = at::softplus(dt_raw.select(1, t) + Pm("dt_bias"));  // [Bn, H]
    state = state * (dt * A).exp().view({Bn, H, 1, 1}) + (dt.view({Bn, H, 1}) * xt).unsqueeze(-1) * Bt.unsqueeze(2);
    const at::Tensor y = at::matmul(state, Ct.unsqueeze(-1)).squeeze(-1) + xt * Pm("D").view({1, H, 1});
    ys.push_back(y.reshape({Bn, I}));
  }
  const at::Tensor y = at::stack(ys, 1);
  const at::Tensor n = ops::gated_rms_norm_ref(y, z, Pm("norm.weight"), 1e-5, false, I / G);
  const at::Tensor want = at::matmul(n, Pm("out_proj.weight").t());
  EXPECT_LE(rel_err(b->forward(x.to(at::kFloat)), want), kTol);
}

// RetNet against the parallel retention form (like fla's naive_retention) with rotate-half RoPE,
// written out in float64: o = ((s·q kᵀ) ⊙ γ_h^{i−j} [i ≥ j]) v.
TEST(RetNetBlock, ForwardMatchesParallelRetentionInFloat64) {
  test::SingleThread one_thread;
  c10::NoGradGuard no_grad;
  const auto b = perturbed(cases()[4], 23);
  const int64_t B = 2, T = 70, H = 2, K = 8, V = 32;  // D·0.5 / 2 heads, D·2 / 2 heads
  at::Generator gen = test::seeded(11);
  const at::Tensor x = test::randn({B, T, D}, gen).to(at::kDouble);
  auto lin = [&](const at::Tensor& t, const char* n) { return at::matmul(t, b->p(n).to(at::kDouble).t()); };
  const at::Tensor pos = at::arange(T, x.options()).view({1, T, 1, 1});
  const at::Tensor inv_freq = 1.0 / at::pow(10000.0, at::arange(0, K, 2, x.options()) / double(K));
  const at::Tensor cos = at::cat({(pos * inv_freq).cos(), (pos * inv_freq).cos()}, -1);
  const at::Tensor sin = at::cat({(pos * inv_freq).sin(), (pos * inv_freq).sin()}, -1);
  auto rope = [&](const at::Tensor& t) {
    const at::Tensor rot = at::cat({-t.narrow(-1, K / 2, K / 2), t.narrow(-1, 0, K / 2)}, -1);
    return t * cos + rot * sin;
  };
  const at::Tensor q = rope(lin(x, "q_proj.weight").view({B, T, H, K})).transpose(1, 2);  // [B, H, T, K]
  const at::Tensor k = rope(lin(x, "k_proj.weight").view({B, T, H, K})).transpose(1, 2);
  const at::Tensor v = lin(x, "v_proj.weight").view({B, T, H, V}).transpose(1, 2);
  const at::Tensor idx = at::arange(T, x.options());
  const at::Tensor diff = idx.view({T, 1}) - idx.view({1, T});
  const at::Tensor gamma = 1.0 - at::pow(2.0, -5.0 - at::arange(H, x.options()));
  const at::Tensor mask = at::pow(gamma.view({H, 1, 1}), diff.clamp_min(0)) * (diff >= 0).to(at::kDouble);
  const at::Tensor o = at::matmul(at::matmul(q / std::sqrt(double(K)), k.transpose(-1, -2)) * mask, v).transpose(1, 2);
  const at::Tensor n = ops::gated_rms_norm_ref(o, lin(x, "g_proj.weight").view({B, T, H, V}),
                                               b->p("g_norm_swish_gate.weight").to(at::kDouble), 1e-5);
  const at::Tensor want = lin(n.reshape({B, T, H * V}), "o_proj.weight");
  EXPECT_LE(rel_err(b->forward(x.to(at::kFloat)), want), kTol);
}

// Gated DeltaNet and DeltaNet against fla's layer formulas in float64 with the oracle ops:
// q, k, v = SiLU(short_conv(x W)), β = σ(x W_b), (GDN) g = −e^{A_log} softplus(x W_a + dt_bias).
TEST(DeltaBlocks, ForwardMatchesLayerFormulasInFloat64) {
  test::SingleThread one_thread;
  c10::NoGradGuard no_grad;
  for (int which : {1, 2}) {  // gdn, deltanet
    const Case c = cases()[which];
    SCOPED_TRACE(c.name);
    const auto b = perturbed(c, 24);
    const bool gdn = c.name == "gdn";
    const int64_t B = 2, T = 67, H = gdn ? 2 : 4, K = 8, V = gdn ? 16 : 8;
    at::Generator gen = test::seeded(12);
    const at::Tensor x = test::randn({B, T, D}, gen).to(at::kDouble);
    auto P = [&](const std::string& n) { return b->p(n).to(at::kDouble); };
    auto lin = [&](const at::Tensor& t, const std::string& n) { return at::matmul(t, P(n).t()); };
    auto qkv = [&](const std::string& n, int64_t width) {
      const std::string bias = n + "_conv1d.bias";
      const bool has_bias = !gdn;  // the deltanet case is configured with conv_bias
      return ops::short_conv_ref(lin(x, n + "_proj.weight"), P(n + "_conv1d.weight").squeeze(1),
                                 has_bias ? P(bias) : at::Tensor(), at::Tensor(), true)
          .view({B, T, H, width});
    };
    ops::LinearAttentionOptions opt;
    opt.delta = true, opt.qk_l2norm = true, opt.decay = gdn ? ops::Decay::scalar : ops::Decay::none;
    const at::Tensor g = gdn ? -P("A_log").exp() * at::softplus(lin(x, "a_proj.weight") + P("dt_bias")) : at::Tensor();
    const at::Tensor o = ops::linear_attention_ref(
        {qkv("q", K), qkv("k", K), qkv("v", V), g, at::sigmoid(lin(x, "b_proj.weight")), at::Tensor(), at::Tensor()}, opt).o;
    const at::Tensor n = gdn ? ops::gated_rms_norm_ref(o, lin(x, "g_proj.weight").view({B, T, H, V}), P("o_norm.weight"), 1e-5)
                             : ops::rms_norm_ref(o, P("o_norm.weight"), 1e-5);
    const at::Tensor want = lin(n.reshape({B, T, H * V}), "o_proj.weight");
    EXPECT_LE(rel_err(b->forward(x.to(at::kFloat)), want), kTol);
  }
}

// GLA against the parallel form with per-channel decay, float64: o_i = Σ_{j≤i} (s·q_i ⊙ e^{Γi−Γj})·k_j v_j.
TEST(GLABlock, ForwardMatchesParallelFormInFloat64) {
  test::SingleThread one_thread;
  c10::NoGradGuard no_grad;
  const auto b = perturbed(cases()[3], 25);
  const int64_t B = 2, T = 40, H = 2, K = 8, V = 16;
  at::Generator gen = test::seeded(13);
  const at::Tensor x = test::randn({B, T, D}, gen).to(at::kDouble);
  auto P = [&](const char* n) { return b->p(n).to(at::kDouble); };
  auto lin = [&](const at::Tensor& t, const char* n) { return at::matmul(t, P(n).t()); };
  const at::Tensor q = lin(x, "q_proj.weight").view({B, T, H, K}) / std::sqrt(double(K));
  const at::Tensor k = lin(x, "k_proj.weight").view({B, T, H, K}), v = lin(x, "v_proj.weight").view({B, T, H, V});
  const at::Tensor gk = at::log_sigmoid(at::matmul(lin(x, "gk_proj.0.weight"), P("gk_proj.1.weight").t()) +
                                        P("gk_proj.1.bias")) / 16.0;
  const at::Tensor G = gk.view({B, T, H, K}).cumsum(1);
  std::vector<at::Tensor> outs;
  for (int64_t i = 0; i < T; ++i) {
    at::Tensor acc = at::zeros({B, H, V}, x.options());
    for (int64_t j = 0; j <= i; ++j) {
      const at::Tensor w = (q.select(1, i) * (G.select(1, i) - G.select(1, j)).exp() * k.select(1, j)).sum(-1);
      acc = acc + w.unsqueeze(-1) * v.select(1, j);
    }
    outs.push_back(acc);
  }
  const at::Tensor o = at::stack(outs, 1);
  const at::Tensor n = ops::gated_rms_norm_ref(o, lin(x, "g_proj.weight").view({B, T, H, V}),
                                               P("g_norm_swish_gate.weight"), 1e-5);
  EXPECT_LE(rel_err(b->forward(x.to(at::kFloat)), lin(n.reshape({B, T, H * V}), "o_proj.weight")), kTol);
}

TEST(JetBlock, Jet2BHeadWidths) {
  JetBlockConfig c;  // jetlm_2B.json's efficient_attention_config (hidden size reduced for speed)
  c.hidden_size = 64, c.num_heads = 12, c.head_dim = 96, c.expand_v = 2.6666666667;
  const auto b = make_jet_block(c, 1);
  EXPECT_EQ(b->p("v_proj.weight").size(0), 3072);
  EXPECT_EQ(b->p("o_norm.weight").size(0), 256);
  c.expand_v = 2.5;  // 96 · 2.5 = 240 is fine; 12 · 96 · 2.01 is not an integer width
  EXPECT_NO_THROW(make_jet_block(c, 1));
  c.expand_v = 2.01;
  EXPECT_THROW(make_jet_block(c, 1), Error);
}

TEST(Blocks, MakeBlockFromConfigJson) {
  const auto jet = make_block("jet", nlohmann::json::parse(R"({"mode": "chunk", "expand_v": 2, "head_dim": 8,
      "num_heads": 2, "norm_eps": 1e-6, "conv_size": 3, "dconv_generator_reduction": 4,
      "dconv_implementation": "triton"})"), D, 0.02, 1);
  EXPECT_EQ(jet->type(), "jet");
  EXPECT_EQ(jet->p("dynamic_conv1d.kernel_generator.w2.weight").sizes(), at::IntArrayRef({32 * 3, 8}));
  EXPECT_EQ(jet->init_state(1).conv[0].size(2), 2);
  for (const char* t : {"gdn", "deltanet", "gla", "retnet", "mamba2"})
    EXPECT_EQ(make_block(t, nlohmann::json::object(), D, 0.02, 1)->type(), t);
  EXPECT_THROW(make_block("jet", nlohmann::json::parse(R"({"num_head": 2})"), D, 0.02, 1), Error);
  EXPECT_THROW(make_block("jet", nlohmann::json::parse(R"({"num_heads": "two"})"), D, 0.02, 1), Error);
  EXPECT_THROW(make_block("lstm", nlohmann::json::object(), D, 0.02, 1), Error);
}

TEST(Blocks, FlaParameterNames) {
  test::SingleThread one_thread;
  GatedDeltaNetConfig gdn;
  gdn.hidden_size = D, gdn.num_heads = 2, gdn.head_dim = 8;
  EXPECT_EQ(names_of(*make_gated_deltanet(gdn, 1)),
            (std::set<std::string>{"q_proj.weight", "k_proj.weight", "v_proj.weight", "a_proj.weight", "b_proj.weight",
                                   "A_log", "dt_bias", "q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight",
                                   "g_proj.weight", "o_norm.weight", "o_proj.weight"}));
  GLAConfig gla;
  gla.hidden_size = D;
  EXPECT_EQ(names_of(*make_gla(gla, 1)),
            (std::set<std::string>{"q_proj.weight", "k_proj.weight", "v_proj.weight", "g_proj.weight",
                                   "gk_proj.0.weight", "gk_proj.1.weight", "gk_proj.1.bias",
                                   "g_norm_swish_gate.weight", "o_proj.weight"}));
  Mamba2Config m2;
  m2.hidden_size = D, m2.head_dim = 16, m2.state_size = 8;
  const auto m = make_mamba2(m2, 1);
  EXPECT_EQ(names_of(*m), (std::set<std::string>{"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log",
                                                 "D", "norm.weight", "out_proj.weight"}));
  EXPECT_EQ(m->p("in_proj.weight").size(0), 2 * 64 + 2 * 8 + 4);  // z, x, B, C, dt
}

}  // namespace
}  // namespace jet::model
