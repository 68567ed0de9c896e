// The CUDA KL of logit rows against the float64 oracle: random rows (vectorised and scalar widths, a
// misaligned view), large offsets, fp32 and bf16 gradients; every gradient element written (poisoned output).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "ops/kl/kl_rows.h"
#include "postnas/distill.h"
#include "../ops/test_util.h"

namespace {

using jet::test::rel_err;

TEST(KlRowsCuda, MatchesTheOracle) {
  auto gen = jet::test::seeded(7);
  for (const int64_t V : {1, 5, 1024, 4097, 49152}) {
    for (const double offset : {0.0, 60.0}) {
      const at::Tensor zs = (jet::test::randn({9, V}, gen) * 5 + offset).cuda();
      const at::Tensor zt = (jet::test::randn({9, V}, gen) * 5 - offset).cuda();
      at::Tensor g_ref;
      const at::Tensor ref = jet::ops::kl_rows_ref(zs.cpu(), zt.cpu(), 0.125, &g_ref);
      for (const auto gd : {at::kFloat, at::kBFloat16}) {
        at::Tensor g = at::full({9, V}, NAN, zs.options().dtype(gd));
        const at::Tensor kl = jet::ops::kl_rows(zs, zt, 0.125, &g, gd);
        EXPECT_EQ(g.scalar_type(), gd);
        EXPECT_LT((kl.cpu().to(at::kDouble) - ref).abs().max().item<double>(), 2e-5 * (1 + ref.abs().max().item<double>()))
            << "V " << V << " offset " << offset;
        EXPECT_LT(rel_err(g, g_ref), gd == at::kFloat ? 1e-5 : 8e-3) << "V " << V;
      }
      const at::Tensor kl_only = jet::ops::kl_rows(zs, zt);
      EXPECT_LT((kl_only.cpu().to(at::kDouble) - ref).abs().max().item<double>(), 2e-5 * (1 + ref.abs().max().item<double>()));
    }
  }
  // A view that starts 4 bytes past an allocation: the scalar path.
  const at::Tensor base = jet::test::randn({4, 257}, gen).cuda();
  const at::Tensor zs = base.view({-1}).narrow(0, 1, 4 * 256).view({4, 256}), zt = zs.flip(1).contiguous();
  at::Tensor g, g_ref;
  const at::Tensor kl = jet::ops::kl_rows(zs, zt, 1.0, &g), ref = jet::ops::kl_rows_ref(zs.cpu(), zt.cpu(), 1.0, &g_ref);
  EXPECT_LT(rel_err(kl, ref), 1e-5);
  EXPECT_LT(rel_err(g, g_ref), 1e-5);
}

// The distillation KL of a bf16 model on CUDA: bf16 tensor-core logit GEMMs (fp32 out) + the CUDA rows kernel +
// the bf16 gradient GEMM against the reference path (operands upcast, fp32 GEMMs, ATen rows), over several chunks.
TEST(KlRowsCuda, TensorCoreChunkedKlKeepsTheFp32PathsPrecision) {
  auto gen = jet::test::seeded(9);
  const int64_t N = 301, D = 96, V = 5003;
  const auto bf = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor W = (jet::test::randn({V, D}, gen) * 0.3).to(bf);
  const at::Tensor ht = jet::test::randn({N, D}, gen).to(bf);
  const at::Tensor hs = (ht.to(at::kFloat) + 0.3 * jet::test::randn({N, D}, gen).cuda()).to(at::kBFloat16);
  at::Tensor g_fast, g_ref;
  const double fast = jet::postnas::chunked_kl(hs, ht, W, 128, &g_fast, 1.0, false).item<double>();
  const double ref = jet::postnas::chunked_kl(hs, ht, W, 128, &g_ref, 1.0, true).item<double>();
  EXPECT_GT(ref, 0.01);
  EXPECT_NEAR(fast, ref, 1e-4 * ref);
  EXPECT_EQ(g_fast.scalar_type(), at::kBFloat16);
  EXPECT_LT(rel_err(g_fast, g_ref), 1e-2);
}

}  // namespace
