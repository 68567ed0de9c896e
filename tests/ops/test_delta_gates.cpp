// The delta-rule gates (g = −exp(A_log)·softplus(a + dt_bias), β = σ(b)): the ATen path against the float64
// oracle, outputs and the gradients of a, b, A_log and dt_bias, on column slices of a wider tensor (the blocks'
// layout) at an odd head count, with values past softplus's linear threshold.
#include <gtest/gtest.h>

#include "core/check.h"
#include "ops/gates/delta_gates.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using test::rel_err;

TEST(DeltaGates, MatchOracleWithGradients) {
  test::SingleThread one_thread;
  const int64_t B = 2, T = 7, H = 5;
  at::Generator gen = test::seeded(3);
  at::Tensor wide = 4 * test::randn({B, T, 2 * H + 3}, gen);
  wide.select(1, 2).select(1, 1).fill_(30.0);  // a + dt_bias > 20: softplus is the identity there
  const at::Tensor A_log = test::randn({H}, gen), dt_bias = test::randn({H}, gen);
  const at::Tensor dg = test::randn({B, T, H}, gen).to(at::kDouble), db = test::randn({B, T, H}, gen).to(at::kDouble);
  auto run = [&](bool ref, at::ScalarType dt) {
    at::Tensor w = wide.to(dt).requires_grad_(true), Al = A_log.to(dt).requires_grad_(true),
               dtb = dt_bias.to(dt).requires_grad_(true);
    const at::Tensor a = w.narrow(-1, 1, H), b = w.narrow(-1, H + 2, H);
    const auto [g, beta] = ref ? delta_gates_ref(a, b, Al, dtb) : delta_gates(a, b, Al, dtb);
    EXPECT_EQ(g.scalar_type(), ref ? at::kDouble : at::kFloat);
    EXPECT_EQ(beta.scalar_type(), g.scalar_type());
    (g.to(at::kDouble) * dg + beta.to(at::kDouble) * db).sum().backward();
    return std::vector<at::Tensor>{g, beta, w.grad(), Al.grad(), dtb.grad()};
  };
  const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
  const char* names[] = {"g", "beta", "da, db", "dA_log", "ddt_bias"};
  for (int i = 0; i < 5; ++i) EXPECT_LE(rel_err(got[i], want[i]), 1e-5) << names[i];
  EXPECT_THROW(delta_gates(wide.narrow(-1, 0, H), wide.narrow(-1, 0, H - 1), A_log, dt_bias), Error);
  EXPECT_THROW(delta_gates(wide.narrow(-1, 0, H), wide.narrow(-1, 0, H), A_log.narrow(0, 0, H - 1), dt_bias), Error);
}

}  // namespace
}  // namespace jet::ops
