// RMSNorm and gated RMSNorm (norm-then-gate and gate-then-norm, grouped) vs the float64 oracle,
// outputs and gradients.
#include <gtest/gtest.h>

#include "core/check.h"
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

}  // namespace
}  // namespace jet::ops
