// Chunked backward on CUDA (linear_attention_chunk_bwd.h): the chunk-scan kernel against the ATen loop
// in float64, and every input's gradient of linear_attention_chunked on bf16 CUDA inputs against autograd
// through the float64 oracle (linear_attention_ref), odd lengths, packed sequences.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../ops/test_util.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_chunk_bwd.h"

namespace {

using namespace jet::ops;  // NOLINT(google-build-using-namespace): the op family under test
using jet::test::rel_err;

// The scan kernel reads its operands as TF32 (fp32 sums): 5e-3 relative L2 vs the float64 loop.
constexpr double kTolScan = 5e-3;
// Gradients of bf16 inputs vs the float64 oracle (the forward's o/state tolerance).
constexpr double kTolGrad = 2e-2;

TEST(ChunkScanCuda, MatchesAtenLoop) {
  for (int64_t K : {32, 96, 128}) {
    for (bool reverse : {false, true}) {
      const int64_t B = 2, H = 3, NC = 5, C = 64, V = 48;
      at::manual_seed(K + reverse);
      auto f64 = at::TensorOptions().dtype(at::kDouble);
      const at::Tensor a = at::randn({B, H, NC, C, K}, f64) * 0.05, b = at::randn({B, H, NC, C, V}, f64);
      const at::Tensor w = at::randn({B, H, NC, C, K}, f64) * 0.05, a2 = at::randn({B, H, NC, C, K}, f64);
      const at::Tensor b2 = at::randn({B, H, NC, C, V}, f64), e = at::rand({B, H, NC, 1, 1}, f64);
      const at::Tensor z0 = at::randn({B, H, K, V}, f64);
      for (bool full : {false, true}) {  // without a and (a2, b2) / with every term
        const at::Tensor A = full ? a : at::Tensor(), A2 = full ? a2 : at::Tensor(), B2 = full ? b2 : at::Tensor();
        const auto ref = jet::ops::detail::chunk_scan(A, b, w, A2, B2, e, z0, reverse);
        auto cu = [](const at::Tensor& x) { return x.defined() ? x.to(at::kCUDA, at::kFloat) : x; };
        ASSERT_TRUE(jet::ops::detail::chunk_scan_cuda_takes(cu(b), cu(z0)));
        const auto got = jet::ops::detail::chunk_scan(cu(A), cu(b), cu(w), cu(A2), cu(B2), cu(e), cu(z0), reverse);
        const double ez = rel_err(got.zin, ref.zin), er = rel_err(got.r, ref.r), ef = rel_err(got.z, ref.z);
        std::printf("  scan K=%3ld reverse=%d full=%d  zin %.2e  r %.2e  z %.2e\n", K, reverse, full, ez, er, ef);
        EXPECT_LT(ez, kTolScan);
        EXPECT_LT(er, kTolScan);
        EXPECT_LT(ef, kTolScan);
      }
    }
  }
}

struct Case {
  const char* name;
  Decay decay;
  bool delta;
  int64_t K, V;
};

// bf16 q/k/v and fp32 gates/state (CUDA leaves), and the same values in float64 on the CPU (leaves).
struct Leaves {
  LinearAttentionInput cuda, f64;
};

std::vector<at::Tensor*> inputs(LinearAttentionInput& in) {
  std::vector<at::Tensor*> r = {&in.q, &in.k, &in.v};
  for (at::Tensor* t : {&in.g, &in.beta, &in.initial_state})
    if (t->defined()) r.push_back(t);
  return r;
}

Leaves make_leaves(const Case& c, int64_t B, int64_t T, int64_t H, int64_t N, bool init, uint64_t seed) {
  at::manual_seed(seed);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  Leaves l;
  LinearAttentionInput& x = l.cuda;
  x.q = at::randn({B, T, H, c.K}, f32).to(at::kCUDA, at::kBFloat16);
  x.k = at::randn({B, T, H, c.K}, f32).to(at::kCUDA, at::kBFloat16);
  x.v = at::randn({B, T, H, c.V}, f32).to(at::kCUDA, at::kBFloat16);
  if (c.decay == Decay::scalar) x.g = (-at::softplus(at::randn({B, T, H}, f32) - 2.5)).cuda();
  if (c.decay == Decay::fixed) x.g = (-0.02 - 0.1 * at::rand({H}, f32)).cuda();
  if (c.delta) x.beta = at::sigmoid(at::randn({B, T, H}, f32)).cuda();
  if (init) x.initial_state = at::randn({N, H, c.K, c.V}, f32).cuda();
  l.f64 = x;
  for (at::Tensor* t : inputs(l.f64)) *t = t->to(at::kCPU, at::kDouble).requires_grad_(true);
  for (at::Tensor* t : inputs(x)) t->requires_grad_(true);
  return l;
}

// Forward + backward of linear_attention_chunked on CUDA and of the oracle with the same loss (o and the
// final state against fixed random weights): the measured errors printed, each against kTolGrad.
void check_grads(const Case& c, Leaves l, const LinearAttentionOptions& opt, const std::string& what) {
  const int64_t N = l.f64.initial_state.defined() ? l.f64.initial_state.size(0) : l.f64.q.size(0);
  const int64_t H = l.f64.q.size(2);
  at::manual_seed(7);
  const at::Tensor dO = at::randn(l.f64.v.sizes(), at::kDouble), dS = at::randn({N, H, c.K, c.V}, at::kDouble);
  const LinearAttentionOutput ref = linear_attention_ref(l.f64, opt);
  ((ref.o * dO).sum() + (ref.final_state * dS).sum()).backward();
  const LinearAttentionOutput got = linear_attention_chunked(l.cuda, opt);
  ((got.o.to(at::kDouble) * dO.cuda()).sum() + (got.final_state.to(at::kDouble) * dS.cuda()).sum()).backward();
  const char* names[] = {"q", "k", "v", "g", "beta", "s0"};
  std::string line = "  " + what + "  o " + std::to_string(rel_err(got.o, ref.o)).substr(0, 8);
  const std::vector<at::Tensor*> gi = inputs(l.cuda), ri = inputs(l.f64);
  for (size_t i = 0; i < gi.size(); ++i) {
    const std::string n = i < 3 ? names[i] : (gi[i] == &l.cuda.g ? "g" : gi[i] == &l.cuda.beta ? "beta" : "s0");
    ASSERT_TRUE(gi[i]->grad().defined()) << what << " d" << n;
    const double e = rel_err(gi[i]->grad(), ri[i]->grad());
    char buf[48];
    std::snprintf(buf, sizeof buf, "  d%s %.2e", n.c_str(), e);
    line += buf;
    EXPECT_LT(e, kTolGrad) << what << " d" << n;
  }
  std::printf("%s\n", line.c_str());
  EXPECT_LT(rel_err(got.o, ref.o), kTolGrad) << what << " o";
  EXPECT_LT(rel_err(got.final_state, ref.final_state), kTolGrad) << what << " final state";
}

// JET_LA_BWD for one scope: scan (batched ATen matmuls + the chunk-scan kernel), cuda (the gradient kernels,
// the default), cuda_aten (the kernels with the per-chunk algebra in ATen).
struct EnvBwd {
  explicit EnvBwd(const char* v) { setenv("JET_LA_BWD", v, 1); }
  ~EnvBwd() { unsetenv("JET_LA_BWD"); }
};

LinearAttentionOptions options(const Case& c) {
  LinearAttentionOptions opt;
  opt.decay = c.decay;
  opt.delta = c.delta;
  opt.qk_l2norm = c.delta;
  return opt;
}

TEST(ChunkedBackwardCuda, GatedDeltaRuleGradientsMatchFloat64Reference) {
  const EnvBwd env("scan");
  const Case c{"gdn", Decay::scalar, true, 96, 256};
  for (int64_t T : {1, 17, 65, 200})
    for (bool init : {false, true})
      check_grads(c, make_leaves(c, 2, T, 2, 2, init, 100 + T + init), options(c),
                  std::string(c.name) + " T=" + std::to_string(T) + " init=" + std::to_string(init));
}

TEST(ChunkedBackwardCuda, OtherMembersGradientsMatchFloat64Reference) {
  const EnvBwd env("scan");
  // V = 48: three of a block's four column warps; V = 40: no scan kernel (the ATen loop on CUDA).
  for (const Case& c : {Case{"deltanet", Decay::none, true, 64, 48}, Case{"retnet", Decay::fixed, false, 128, 48},
                        Case{"mamba2", Decay::scalar, false, 32, 40}, Case{"linear", Decay::none, false, 64, 64}})
    check_grads(c, make_leaves(c, 2, 130, 3, 2, true, 200), options(c), std::string(c.name) + " T=130");
}

TEST(ChunkedBackwardCuda, PackedSequencesGradientsMatchFloat64Reference) {
  const EnvBwd env("scan");
  const Case c{"gdn", Decay::scalar, true, 96, 256};
  const std::vector<int64_t> cu = {0, 17, 17, 100, 230};  // includes an empty sequence
  Leaves l = make_leaves(c, 1, cu.back(), 2, cu.size() - 1, true, 300);
  l.cuda.cu_seqlens = at::tensor(cu, at::kLong).cuda();
  l.f64.cu_seqlens = at::tensor(cu, at::kLong);
  check_grads(c, l, options(c), "gdn packed {17, 0, 83, 130}");
}

// The CUDA gradient kernels (linear_attention_chunk_grad.h, the default): the delta-rule members at every
// head width the kernels take, odd lengths (partial last chunk, a single token), V not a multiple of the
// 64-column tiles or of a state block, h0 and packed sequences.
TEST(ChunkGradKernels, GatedDeltaRuleGradientsMatchFloat64Reference) {
  for (const char* path : {"cuda", "cuda_aten"}) {  // every step in kernels / the per-chunk algebra in ATen
    const EnvBwd env(path);
    const Case c{"gdn", Decay::scalar, true, 96, 256};
    for (int64_t T : {1, 17, 65, 200})
      for (bool init : {false, true})
        check_grads(c, make_leaves(c, 2, T, 2, 2, init, 100 + T + init), options(c),
                    std::string(path) + " " + c.name + " T=" + std::to_string(T) + " init=" + std::to_string(init));
  }
}

TEST(ChunkGradKernels, OtherWidthsAndDecaysMatchFloat64Reference) {
  const EnvBwd env("cuda");
  for (const Case& c : {Case{"deltanet", Decay::none, true, 64, 48}, Case{"gdn-k128", Decay::scalar, true, 128, 136},
                        Case{"fixed", Decay::fixed, true, 128, 64}})
    check_grads(c, make_leaves(c, 2, 130, 3, 2, true, 500), options(c), std::string("kernels ") + c.name + " T=130");
  // the members without the delta rule fall back to the scan path
  for (const Case& c : {Case{"retnet", Decay::fixed, false, 128, 48}, Case{"mamba2", Decay::scalar, false, 32, 40}})
    check_grads(c, make_leaves(c, 2, 130, 3, 2, true, 200), options(c), std::string("fallback ") + c.name + " T=130");
}

// K = 32: the default keeps the scan path (the kernels' dk was 0.37 off on the H100, dβ 0.04: open).
TEST(ChunkGradKernels, K32DefaultTakesTheScanPath) {
  const Case c{"gdn-k32", Decay::scalar, true, 32, 40};
  check_grads(c, make_leaves(c, 2, 130, 3, 2, true, 500), options(c), "default gdn-k32 T=130");
}

// The open K = 32 case through the kernels (run with --gtest_also_run_disabled_tests to see where it stands).
TEST(ChunkGradKernels, DISABLED_K32Kernels) {
  for (const char* path : {"scan", "cuda_aten", "cuda"}) {
    const EnvBwd env(path);
    for (int64_t V : {40, 64}) {
      const Case c{"gdn-k32", Decay::scalar, true, 32, V};
      check_grads(c, make_leaves(c, 2, 130, 3, 2, true, 500), options(c),
                  std::string(path) + " gdn-k32 V=" + std::to_string(V) + " T=130");
    }
  }
}

TEST(ChunkGradKernels, PackedSequencesMatchFloat64Reference) {
  const EnvBwd env("cuda");
  const Case c{"gdn", Decay::scalar, true, 96, 256};
  const std::vector<int64_t> cu = {0, 17, 17, 100, 230};
  Leaves l = make_leaves(c, 1, cu.back(), 2, cu.size() - 1, true, 300);
  l.cuda.cu_seqlens = at::tensor(cu, at::kLong).cuda();
  l.f64.cu_seqlens = at::tensor(cu, at::kLong);
  check_grads(c, l, options(c), "kernels gdn packed {17, 0, 83, 130}");
}

// Small enough for compute-sanitizer: one GDN case at the 2B head widths through the kernels.
TEST(ChunkedBackwardCuda, SanitizerCase) {
  const EnvBwd env("scan");
  const Case c{"gdn", Decay::scalar, true, 96, 256};
  check_grads(c, make_leaves(c, 1, 130, 2, 1, true, 400), options(c), "gdn T=130 (sanitizer case)");
}

TEST(ChunkGradKernels, SanitizerCase) {  // the default path
  const Case c{"gdn", Decay::scalar, true, 96, 256};
  check_grads(c, make_leaves(c, 1, 130, 2, 1, true, 400), options(c), "kernels gdn T=130 (sanitizer case)");
}

}  // namespace
