// KL of logit rows (ops/kl): the ATen path against the float64 oracle and against autograd of the plain
// formula, on random rows of odd widths, with large logit offsets (the log-sum-exps must not overflow).
#include <gtest/gtest.h>

#include "core/check.h"
#include "ops/kl/kl_rows.h"
#include "test_util.h"

namespace {

using jet::test::rel_err;

TEST(KlRows, OracleMatchesAutogradOfThePlainFormula) {
  auto gen = jet::test::seeded(3);
  const at::Tensor zs = at::randn({7, 13}, gen, at::kDouble) * 3, zt = at::randn({7, 13}, gen, at::kDouble) * 3;
  at::Tensor gz;
  const at::Tensor kl = jet::ops::kl_rows_ref(zs, zt, 0.25, &gz);
  at::Tensor x = zs.clone().set_requires_grad(true);
  const at::Tensor lt = at::log_softmax(zt, -1);
  const at::Tensor per_row = (lt.exp() * (lt - at::log_softmax(x, -1))).sum(-1);
  (per_row.sum() * 0.25).backward();
  EXPECT_LT(rel_err(kl, per_row), 1e-12);
  EXPECT_LT(rel_err(gz, x.grad()), 1e-12);
  EXPECT_TRUE((kl >= 0).all().item<bool>());
}

TEST(KlRows, Fp32PathMatchesTheOracle) {
  auto gen = jet::test::seeded(5);
  for (const int64_t V : {1, 3, 64, 257, 1001}) {
    for (const double offset : {0.0, 80.0}) {
      const at::Tensor zs = jet::test::randn({5, V}, gen) * 4 + offset, zt = jet::test::randn({5, V}, gen) * 4 - offset;
      at::Tensor g, g_ref;
      const at::Tensor kl = jet::ops::kl_rows(zs, zt, 0.5, &g), ref = jet::ops::kl_rows_ref(zs, zt, 0.5, &g_ref);
      EXPECT_EQ(kl.scalar_type(), at::kFloat);
      EXPECT_LT((kl.to(at::kDouble) - ref).abs().max().item<double>(), 1e-5 * (1 + ref.abs().max().item<double>()))
          << "V " << V;
      EXPECT_LT(rel_err(g, g_ref), 1e-5) << "V " << V;
    }
  }
}

TEST(KlRows, RejectsMismatchedRows) {
  const at::Tensor a = at::zeros({2, 3}), b = at::zeros({2, 4});
  EXPECT_THROW(jet::ops::kl_rows(a, b), jet::Error);
  EXPECT_THROW(jet::ops::kl_rows(at::zeros({3}), at::zeros({3})), jet::Error);
}

}  // namespace
