// CUDA chunked forward of the linear-attention family (linear_attention_chunk_cuda.h) vs the float64
// oracle (linear_attention_ref): outputs and final states, odd lengths around the chunk size, with and
// without an initial state, JetBlock-2B head widths and a small shape; packed sequences == separate runs;
// linear_attention / linear_attention_chunked take the kernel for bf16 CUDA inputs without gradients.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../ops/test_util.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_chunk_cuda.h"

namespace {

using jet::test::rel_err;

using jet::ops::Decay;
using jet::ops::LinearAttentionInput;
using jet::ops::LinearAttentionOptions;
using jet::ops::LinearAttentionOutput;

// Random float64 inputs already rounded to what the kernel reads (bf16 q/k/v, fp32 gates and state).
struct Inputs {
  LinearAttentionInput in;  // float64, CPU
  LinearAttentionOptions opt;
};

Inputs make_inputs(int64_t B, int64_t T, int64_t H, int64_t K, int64_t V, Decay decay, bool delta, bool init,
                   uint64_t seed) {
  at::manual_seed(seed);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto bf = [](at::Tensor t) { return t.to(at::kBFloat16).to(at::kDouble); };
  auto f32 = [](at::Tensor t) { return t.to(at::kFloat).to(at::kDouble); };
  Inputs r;
  r.in.q = bf(at::randn({B, T, H, K}, f64));
  r.in.k = bf(at::randn({B, T, H, K}, f64));
  r.in.v = bf(at::randn({B, T, H, V}, f64));
  // Mild decays (mean log decay ≈ −0.1 per token), so the state keeps a long memory at T = 1000.
  if (decay == Decay::scalar) r.in.g = f32(-at::softplus(at::randn({B, T, H}, f64) - 2.5));
  if (decay == Decay::fixed) r.in.g = f32(-0.02 - 0.1 * at::rand({H}, f64));
  if (delta) r.in.beta = f32(at::sigmoid(at::randn({B, T, H}, f64)));
  if (init) r.in.initial_state = f32(at::randn({B, H, K, V}, f64));
  r.opt.decay = decay;
  r.opt.delta = delta;
  r.opt.qk_l2norm = delta;  // the delta-rule blocks normalise q/k; the additive ones (RetNet, Mamba2) need not
  return r;
}

LinearAttentionOutput run_cuda(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  auto cu = [](const at::Tensor& t, at::ScalarType dt) { return t.defined() ? t.to(at::kCUDA, dt) : t; };
  return jet::ops::linear_attention_chunk_cuda(
      cu(in.q, at::kBFloat16), cu(in.k, at::kBFloat16), cu(in.v, at::kBFloat16), cu(in.g, at::kFloat),
      opt.decay == Decay::fixed, cu(in.beta, at::kFloat), cu(in.initial_state, at::kFloat),
      in.cu_seqlens.defined() ? in.cu_seqlens.to(at::kCUDA) : in.cu_seqlens,
      jet::ops::linear_attention_scale(opt, in.q.size(3)), opt.qk_l2norm);
}

// Tolerances (relative L2 vs float64): o 2e-2 and final state 2e-2. The kernel rounds to bf16 what
// its tensor-core matmuls read (normalised q/k, W, U, v' and the state entering each chunk), like fla;
// the state itself is carried in fp32. Measured values are printed.
constexpr double kTolO = 2e-2, kTolS = 2e-2;

void check_case(const char* what, int64_t B, int64_t T, int64_t H, int64_t K, int64_t V, Decay decay, bool delta,
                bool init) {
  Inputs x = make_inputs(B, T, H, K, V, decay, delta, init, 1000 + T * 7 + K + V + init);
  auto ref = jet::ops::linear_attention_ref(x.in, x.opt);
  auto got = run_cuda(x.in, x.opt);
  ASSERT_EQ(got.o.scalar_type(), at::kBFloat16);
  ASSERT_EQ(got.final_state.scalar_type(), at::kFloat);
  ASSERT_EQ(got.o.sizes(), ref.o.sizes());
  ASSERT_EQ(got.final_state.sizes(), ref.final_state.sizes());
  const double eo = rel_err(got.o, ref.o), es = rel_err(got.final_state, ref.final_state);
  std::printf("  %-10s K=%3ld V=%3ld T=%4ld init=%d  o %.2e  state %.2e\n", what, K, V, T, init, eo, es);
  EXPECT_LT(eo, kTolO) << what << " K=" << K << " V=" << V << " T=" << T << " init=" << init;
  EXPECT_LT(es, kTolS) << what << " K=" << K << " V=" << V << " T=" << T << " init=" << init;
  EXPECT_FALSE(got.o.isnan().any().item<bool>());
}

}  // namespace

TEST(LinearAttentionChunkCuda, GatedDeltaRuleMatchesFloat64Reference) {
  for (auto kv : std::vector<std::pair<int64_t, int64_t>>{{96, 256}, {32, 48}})
    for (int64_t T : {1, 17, 64, 65, 200, 1000})
      for (bool init : {false, true}) check_case("gdn", 2, T, 2, kv.first, kv.second, Decay::scalar, true, init);
}

TEST(LinearAttentionChunkCuda, OtherMembersMatchFloat64Reference) {
  struct M {
    const char* name;
    Decay decay;
    bool delta;
  };
  for (const M& m : {M{"deltanet", Decay::none, true}, M{"fixed+delta", Decay::fixed, true},
                     M{"linear", Decay::none, false}, M{"retnet", Decay::fixed, false}, M{"mamba2", Decay::scalar, false}})
    for (auto kv : std::vector<std::pair<int64_t, int64_t>>{{128, 64}, {64, 40}})
      for (int64_t T : {17, 200}) check_case(m.name, 2, T, 3, kv.first, kv.second, m.decay, m.delta, true);
}

TEST(LinearAttentionChunkCuda, PackedSequencesEqualSeparateRuns) {
  for (bool delta : {true, false}) {
    const std::vector<int64_t> cu = {0, 17, 17, 100, 300, 301};  // includes an empty sequence
    const int64_t T = cu.back(), N = cu.size() - 1, H = 2, K = 96, V = 256;
    Inputs x = make_inputs(1, T, H, K, V, delta ? Decay::scalar : Decay::fixed, delta, false, 77);
    x.in.initial_state = at::randn({N, H, K, V}, at::kDouble).to(at::kFloat).to(at::kDouble);
    x.in.cu_seqlens = at::tensor(cu, at::kLong);
    auto packed = run_cuda(x.in, x.opt);
    auto ref = jet::ops::linear_attention_ref(x.in, x.opt);
    EXPECT_LT(rel_err(packed.o, ref.o), kTolO);
    EXPECT_LT(rel_err(packed.final_state, ref.final_state), kTolS);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t len = cu[n + 1] - cu[n];
      LinearAttentionInput s;
      s.q = x.in.q.narrow(1, cu[n], len);
      s.k = x.in.k.narrow(1, cu[n], len);
      s.v = x.in.v.narrow(1, cu[n], len);
      s.g = delta ? x.in.g.narrow(1, cu[n], len) : x.in.g;
      if (delta) s.beta = x.in.beta.narrow(1, cu[n], len);
      s.initial_state = x.in.initial_state.narrow(0, n, 1);
      auto one = run_cuda(s, x.opt);
      // Same chunks, same arithmetic: equal up to fp32 summation order (in practice bit-equal).
      if (len) {
        EXPECT_LT(rel_err(packed.o.narrow(1, cu[n], len), one.o), 1e-6) << "sequence " << n;
      }
      EXPECT_LT(rel_err(packed.final_state.narrow(0, n, 1), one.final_state), 1e-6) << "sequence " << n;
    }
  }
}

// The state kernel's block shapes (JET_LA_STATE_NW: 2, 4, 8 value-column warps per block; the tests above
// only reach 2, the 2B prefill shapes take 8 at B = 8) compute the same per-warp arithmetic: equal results,
// also with a partial last column tile (V = 40, 200).
TEST(LinearAttentionChunkCuda, StateKernelShapesAgree) {
  for (int64_t V : {256, 200, 40}) {
    Inputs x = make_inputs(2, 150, 3, 96, V, Decay::scalar, true, true, 11 + V);
    setenv("JET_LA_STATE_NW", "2", 1);
    auto base = run_cuda(x.in, x.opt);
    for (const char* nw : {"4", "8"}) {
      setenv("JET_LA_STATE_NW", nw, 1);
      auto got = run_cuda(x.in, x.opt);
      EXPECT_LT(rel_err(got.o, base.o), 1e-6) << "NW=" << nw << " V=" << V;
      EXPECT_LT(rel_err(got.final_state, base.final_state), 1e-6) << "NW=" << nw << " V=" << V;
    }
    unsetenv("JET_LA_STATE_NW");
  }
}

// linear_attention and linear_attention_chunked route bf16 CUDA inputs without gradients to the kernel
// (the result is the kernel's, bit for bit); with a gradient wanted they go through the chunked-backward
// function (linear_attention_chunk_bwd.h), whose forward is the same kernel.
TEST(LinearAttentionChunkCuda, DispatchTakesTheKernelWithoutGradients) {
  Inputs x = make_inputs(2, 70, 2, 64, 64, Decay::scalar, true, true, 5);
  auto direct = run_cuda(x.in, x.opt);
  LinearAttentionInput c;
  c.q = x.in.q.to(at::kCUDA, at::kBFloat16);
  c.k = x.in.k.to(at::kCUDA, at::kBFloat16);
  c.v = x.in.v.to(at::kCUDA, at::kBFloat16);
  c.g = x.in.g.to(at::kCUDA, at::kFloat);
  c.beta = x.in.beta.to(at::kCUDA, at::kFloat);
  c.initial_state = x.in.initial_state.to(at::kCUDA, at::kFloat);
  {
    c10::NoGradGuard ng;
    auto a = jet::ops::linear_attention(c, x.opt), b = jet::ops::linear_attention_chunked(c, x.opt);
    EXPECT_TRUE(at::equal(a.o, direct.o));
    EXPECT_TRUE(at::equal(b.final_state, direct.final_state));
  }
  c.v = c.v.detach().requires_grad_(true);  // bf16 leaf: the chunked-backward function
  auto g = jet::ops::linear_attention(c, x.opt);
  EXPECT_TRUE(g.o.requires_grad());
  auto ref = jet::ops::linear_attention_ref(x.in, x.opt);
  EXPECT_LT(rel_err(g.o.detach(), ref.o), kTolO);
}

TEST(LinearAttentionChunkCuda, RejectsUnsupportedShapes) {
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto q = at::randn({1, 5, 2, 48}, bf), v = at::randn({1, 5, 2, 64}, bf);
  EXPECT_THROW(jet::ops::linear_attention_chunk_cuda(q, q, v, {}, false, {}, {}, {}, 0.1, true), std::exception);
  auto q64 = at::randn({1, 5, 2, 64}, bf), v12 = at::randn({1, 5, 2, 12}, bf);
  EXPECT_THROW(jet::ops::linear_attention_chunk_cuda(q64, q64, v12, {}, false, {}, {}, {}, 0.1, true), std::exception);
  EXPECT_FALSE(jet::ops::linear_attention_chunk_cuda_supports(48, 64));
}
