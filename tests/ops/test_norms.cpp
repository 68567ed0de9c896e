// RMSNorm, residual add + RMSNorm and gated RMSNorm (norm-then-gate and gate-then-norm, grouped) vs the
// float64 oracle, outputs and gradients; silu(gate) · up vs its oracle.
#include <gtest/gtest.h>

#include "core/check.h"
#include "ops/activations/silu_mul.h"
#include "ops/norms/norms.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using test::rel_err;

constexpr double kTol = 1e-5;  // fp32 vs float64, outputs and gradients

TEST(Norms, GatedRmsNormMatchesOracle) {
  test::SingleThread one_thread;
  const int64_t D = 16;
  for (bool before : {true, false}) {
    for (int64_t group : {0, 4}) {
      SCOPED_TRACE(std::string(before ? "norm first" : "gate first") + " group " + std::to_string(group));
      at::Generator gen = test::seeded(group + before);
      const at::Tensor x = test::randn({3, 5, D}, gen), z = test::randn({3, 5, D}, gen);
      const at::Tensor w = 1.0 + 0.1 * test::randn({D}, gen), dy = test::randn({3, 5, D}, gen).to(at::kDouble);
      auto run = [&](bool ref, at::ScalarType dt) {
        at::Tensor xa = x.to(dt).requires_grad_(true), za = z.to(dt).requires_grad_(true);
        at::Tensor wa = w.to(dt).requires_grad_(true);
        at::Tensor y = ref ? gated_rms_norm_ref(xa, za, wa, 1e-5, before, group)
                           : gated_rms_norm(xa, za, wa, 1e-5, before, group);
        (y.to(at::kDouble) * dy).sum().backward();
        return std::vector<at::Tensor>{y, xa.grad(), za.grad(), wa.grad()};
      };
      const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
      const char* names[] = {"y", "dx", "dgate", "dweight"};
      for (int i = 0; i < 4; ++i) EXPECT_LE(rel_err(got[i], want[i]), kTol) << names[i];
    }
  }
}

// The blocks' layout: o [B, T, H, V] at an odd V, the gate a column slice of a wider GEMM output split into heads.
TEST(Norms, GatedRmsNormOddWidthStridedGateMatchesOracle) {
  test::SingleThread one_thread;
  const int64_t B = 2, T = 3, H = 3, V = 37;
  at::Generator gen = test::seeded(7);
  const at::Tensor x = test::randn({B, T, H, V}, gen), wide = 2 * test::randn({B, T, H * V + 5}, gen);
  const at::Tensor w = 1.0 + 0.1 * test::randn({V}, gen), dy = test::randn({B, T, H, V}, gen).to(at::kDouble);
  auto run = [&](bool ref, at::ScalarType dt) {
    at::Tensor xa = x.to(dt).requires_grad_(true), za = wide.to(dt).requires_grad_(true);
    at::Tensor wa = w.to(dt).requires_grad_(true);
    const at::Tensor z = za.narrow(-1, 3, H * V).unflatten(-1, {H, V});
    at::Tensor y = ref ? gated_rms_norm_ref(xa, z, wa, 1e-6) : gated_rms_norm(xa, z, wa, 1e-6);
    (y.to(at::kDouble) * dy).sum().backward();
    return std::vector<at::Tensor>{y, xa.grad(), za.grad(), wa.grad()};
  };
  const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
  const char* names[] = {"y", "dx", "dgate", "dweight"};
  for (int i = 0; i < 4; ++i) EXPECT_LE(rel_err(got[i], want[i]), kTol) << names[i];
  EXPECT_EQ(got[2].narrow(-1, 0, 3).abs().sum().item<double>(), 0.0);  // columns outside the slice
}

TEST(Norms, RmsNormMatchesOracleAndKeepsDtype) {
  test::SingleThread one_thread;
  at::Generator gen = test::seeded(1);
  const at::Tensor x = test::randn({4, 32}, gen), w = test::randn({32}, gen);
  EXPECT_LE(rel_err(rms_norm(x, w, 1e-6), rms_norm_ref(x, w, 1e-6)), kTol);
  EXPECT_LE(rel_err(rms_norm(x, at::Tensor(), 1e-6, 8), rms_norm_ref(x, at::Tensor(), 1e-6, 8)), kTol);
  const at::Tensor yb = rms_norm(x.to(at::kBFloat16), w, 1e-6);
  EXPECT_EQ(yb.scalar_type(), at::kBFloat16);
  EXPECT_LE(rel_err(yb, rms_norm_ref(x.to(at::kBFloat16), w, 1e-6)), 1e-2);
  EXPECT_THROW(rms_norm(x, at::ones({31}), 1e-6), Error);
  EXPECT_THROW(gated_rms_norm(x, at::ones({4, 31}), w, 1e-6), Error);
}

TEST(Norms, AddRmsNormMatchesOracleWithGradients) {
  test::SingleThread one_thread;
  at::Generator gen = test::seeded(2);
  const int64_t D = 37;  // odd
  const at::Tensor x = test::randn({2, 3, D}, gen), y = test::randn({2, 3, D}, gen), w = test::randn({D}, gen);
  const at::Tensor dh = test::randn({2, 3, D}, gen).to(at::kDouble), dn = test::randn({2, 3, D}, gen).to(at::kDouble);
  auto run = [&](bool ref, at::ScalarType dt) {
    at::Tensor xa = x.to(dt).requires_grad_(true), ya = y.to(dt).requires_grad_(true), wa = w.to(dt).requires_grad_(true);
    auto [h, n] = ref ? add_rms_norm_ref(xa, ya, wa, 1e-6) : add_rms_norm(xa, ya, wa, 1e-6);
    EXPECT_EQ(h.scalar_type(), dt);
    EXPECT_EQ(n.scalar_type(), dt);
    (h.to(at::kDouble) * dh + n.to(at::kDouble) * dn).sum().backward();
    return std::vector<at::Tensor>{h, n, xa.grad(), ya.grad(), wa.grad()};
  };
  const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
  const char* names[] = {"h", "n", "dx", "dy", "dweight"};
  for (int i = 0; i < 5; ++i) EXPECT_LE(rel_err(got[i], want[i]), kTol) << names[i];
  // Without a weight, and bf16 (h rounded once, the norm of the rounded h).
  const auto [hb, nb] = add_rms_norm(x.to(at::kBFloat16), y.to(at::kBFloat16), at::Tensor(), 1e-6);
  const auto [hr, nr] = add_rms_norm_ref(x, y, at::Tensor(), 1e-6);
  EXPECT_LE(rel_err(hb, hr), 1e-2);
  EXPECT_LE(rel_err(nb, nr), 1e-2);
  EXPECT_THROW(add_rms_norm(x, y.narrow(-1, 0, D - 1), w, 1e-6), Error);
  EXPECT_THROW(add_rms_norm(x, y.to(at::kDouble), w, 1e-6), Error);
}

TEST(Activations, SiluMulMatchesOracleWithGradients) {
  test::SingleThread one_thread;
  at::Generator gen = test::seeded(3);
  const at::Tensor g = 4 * test::randn({3, 29}, gen), u = test::randn({3, 29}, gen), dy = test::randn({3, 29}, gen);
  at::Tensor ga = g.clone().requires_grad_(true), ua = u.clone().requires_grad_(true);
  const at::Tensor y = silu_mul(ga, ua);
  (y * dy).sum().backward();
  at::Tensor gd = g.to(at::kDouble).requires_grad_(true), ud = u.to(at::kDouble).requires_grad_(true);
  (silu_mul_ref(gd, ud) * dy.to(at::kDouble)).sum().backward();
  EXPECT_LE(rel_err(y, silu_mul_ref(g, u)), kTol);
  EXPECT_LE(rel_err(ga.grad(), gd.grad()), kTol);
  EXPECT_LE(rel_err(ua.grad(), ud.grad()), kTol);
  EXPECT_THROW(silu_mul(g, u.narrow(1, 0, 28)), Error);
}

// The packed form: gu [..., 2F] (odd F), gradient of gu whole against the oracle on its halves.
TEST(Activations, SiluMulPackedMatchesOracleWithGradients) {
  test::SingleThread one_thread;
  at::Generator gen = test::seeded(4);
  const int64_t F = 29;
  const at::Tensor gu = 3 * test::randn({2, 3, 2 * F}, gen), dy = test::randn({2, 3, F}, gen);
  at::Tensor ga = gu.clone().requires_grad_(true), gd = gu.to(at::kDouble).requires_grad_(true);
  const at::Tensor y = silu_mul_packed(ga);
  (y * dy).sum().backward();
  const at::Tensor want = silu_mul_ref(gd.narrow(-1, 0, F), gd.narrow(-1, F, F));
  (want * dy.to(at::kDouble)).sum().backward();
  EXPECT_LE(rel_err(y, want), kTol);
  EXPECT_LE(rel_err(ga.grad(), gd.grad()), kTol);
  EXPECT_THROW(silu_mul_packed(gu.narrow(-1, 0, 2 * F - 1)), Error);
}

}  // namespace
}  // namespace jet::ops
