// ops/cpu (the raw kernels of the CPU decode step) vs the float64 references or the ATen steps of the ops they stand
// for, odd sizes (masked tails of the AVX-512 bodies); the AVX-512 and the portable bodies (JET_CPU_ISA).
#include <gtest/gtest.h>

#include "ops/activations/silu_mul.h"
#include "ops/attention/decode_attention.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/short_conv/short_conv.h"
#include "ops/norms/norms.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using test::rel_err;

TEST(CpuKernels, NormsAndSiluMatchReferences) {
  test::for_each_isa({"avx512", "portable"}, [&](const char* isa) {
    SCOPED_TRACE(isa);
    at::Generator gen = test::seeded(1);
    for (int64_t n : {1, 17, 64, 577}) {
      SCOPED_TRACE(n);
      const at::Tensor x = test::randn({n}, gen), y = test::randn({n}, gen), w = test::randn({n}, gen);
      at::Tensor out = at::empty({n}), h = x.clone();
      cpu::rms_norm(x.data_ptr<float>(), w.data_ptr<float>(), 1e-5f, n, out.data_ptr<float>());
      EXPECT_LE(rel_err(out, rms_norm_ref(x, w, 1e-5)), 1e-5);
      cpu::add_rms_norm(h.data_ptr<float>(), y.data_ptr<float>(), w.data_ptr<float>(), 1e-5f, n, out.data_ptr<float>());
      const auto [h_ref, n_ref] = add_rms_norm_ref(x, y, w, 1e-5);
      EXPECT_LE(rel_err(h, h_ref), 1e-6);
      EXPECT_LE(rel_err(out, n_ref), 1e-5);
      const at::Tensor g = 4 * test::randn({n}, gen);
      cpu::silu_mul(g.data_ptr<float>(), y.data_ptr<float>(), n, out.data_ptr<float>());
      EXPECT_LE(rel_err(out, silu_mul_ref(g, y)), 1e-5);
    }
  });
}

TEST(CpuKernels, AttendMatchesDecodeAttentionReference) {
  test::for_each_isa({"avx512", "portable"}, [&](const char* isa) {
    SCOPED_TRACE(isa);
    at::Generator gen = test::seeded(2);
    for (int64_t D : {64, 24}) {
      for (int64_t S : {1, 5, 37}) {
        SCOPED_TRACE("D " + std::to_string(D) + " S " + std::to_string(S));
        const int64_t ld = D + 8;  // rows of a wider buffer
        const at::Tensor q = test::randn({1, 1, D}, gen), kv = test::randn({2, S, ld}, gen);
        const at::Tensor k = kv[0].narrow(1, 0, D), v = kv[1].narrow(1, 0, D);
        const at::Tensor want = decode_attention_ref(q, k.reshape({1, 1, S, D}), v.reshape({1, 1, S, D}), {}).view({D});
        at::Tensor out = at::empty({D}), scores = at::empty({S});
        cpu::attend(q.data_ptr<float>(), kv[0].data_ptr<float>(), kv[1].data_ptr<float>(), ld, S, D,
                    1.f / std::sqrt(float(D)), scores.data_ptr<float>(), out.data_ptr<float>());
        EXPECT_LE(rel_err(out, want), 1e-5);
      }
    }
  });
}

TEST(CpuKernels, SiluAndL2NormMatchAten) {
  test::for_each_isa({"avx512", "portable"}, [&](const char* isa) {
    SCOPED_TRACE(isa);
    at::Generator gen = test::seeded(3);
    for (int64_t n : {1, 17, 96}) {
      const at::Tensor x = 4 * test::randn({n}, gen);
      at::Tensor out = at::empty({n}), y = x.clone();
      cpu::silu(x.data_ptr<float>(), n, out.data_ptr<float>());
      EXPECT_LE(rel_err(out, at::silu(x.to(at::kDouble))), 1e-6);
      cpu::l2_normalize(y.data_ptr<float>(), n, 0.5f);
      EXPECT_LE(rel_err(y, 0.5 * l2_normalize(x.to(at::kDouble))), 1e-6);
    }
  });
}

TEST(CpuKernels, ConvStepMatchesDynamicAndShortConvSteps) {
  test::for_each_isa({"avx512", "portable"}, [&](const char* isa) {
    SCOPED_TRACE(isa);
    at::Generator gen = test::seeded(4);
    for (int64_t W : {2, 4}) {
      SCOPED_TRACE(W);
      const int64_t C = 37;
      const at::Tensor x = test::randn({1, C}, gen), taps = test::randn({1, C, W}, gen), bias = test::randn({C}, gen);
      const at::Tensor tail0 = test::randn({1, C, W - 1}, gen);
      for (bool silu : {false, true}) {
        at::Tensor tail = tail0.clone(), ref_tail = tail0.clone(), out = at::empty({C});
        cpu::conv_step(x.data_ptr<float>(), taps.data_ptr<float>(), nullptr, C, W, tail.data_ptr<float>(), silu,
                       out.data_ptr<float>());
        EXPECT_LE(rel_err(out, dynamic_conv_step(x, taps, ref_tail, silu)[0]), 1e-6);
        EXPECT_TRUE(tail.equal(ref_tail));
        // Static taps with a bias, in place (out == x).
        at::Tensor y = x.clone();
        tail = tail0.clone(), ref_tail = tail0.clone();
        cpu::conv_step(y.data_ptr<float>(), taps.data_ptr<float>(), bias.data_ptr<float>(), C, W, tail.data_ptr<float>(),
                       silu, y.data_ptr<float>());
        EXPECT_LE(rel_err(y, short_conv_step(x, taps[0], bias, ref_tail, silu)[0]), 1e-6);
        EXPECT_TRUE(tail.equal(ref_tail));
      }
    }
  });
}

TEST(CpuKernels, DeltaRuleStepMatchesLinearAttentionStep) {
  test::for_each_isa({"avx512", "portable"}, [&](const char* isa) {
    SCOPED_TRACE(isa);
    at::Generator gen = test::seeded(5);
    const LinearAttentionOptions opt{Decay::scalar, /*delta=*/true, /*qk_l2norm=*/false, /*scale=*/1.0};
    for (auto [K, V] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {32, 24}, {8, 53}, {5, 130}}) {
      SCOPED_TRACE("K " + std::to_string(K) + " V " + std::to_string(V));
      const at::Tensor q = test::randn({1, 1, K}, gen), v = test::randn({1, 1, V}, gen);
      const at::Tensor k = l2_normalize(test::randn({1, 1, K}, gen));
      const at::Tensor g = at::full({1, 1}, -0.3), beta = at::full({1, 1}, 0.7);
      at::Tensor S = test::randn({1, 1, K, V}, gen), ref_S = S.clone(), o = at::empty({V});
      const at::Tensor want = linear_attention_step(q, k, v, g, beta, ref_S, opt);
      cpu::delta_rule_step(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), std::exp(-0.3f), 0.7f, K, V,
                           S.data_ptr<float>(), o.data_ptr<float>());
      EXPECT_LE(rel_err(o, want.view({V})), 1e-5);
      EXPECT_LE(rel_err(S, ref_S), 1e-6);
    }
  });
}

}  // namespace
}  // namespace jet::ops
