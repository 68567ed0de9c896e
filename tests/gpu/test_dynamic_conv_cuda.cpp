// CUDA forward of the dynamic causal conv (dynamic_conv_cuda.h) vs the float64 oracle (dynamic_conv_ref):
// odd lengths, with and without a tail, SiLU on and off, fp32 and bf16; dynamic_conv takes it on CUDA
// without gradients.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <vector>

#include "../ops/test_util.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/dynamic_conv/dynamic_conv_cuda.h"

namespace {

using jet::test::rel_err;

}  // namespace

TEST(DynamicConvCuda, MatchesFloat64Reference) {
  for (auto dt : {at::kFloat, at::kBFloat16})
    for (int64_t W : {4, 3, 1})
      for (int64_t T : {1, 2, 5, 70})
        for (bool with_tail : {false, true})
          for (bool silu : {true, false}) {
            const int64_t B = 2, C = 40;
            at::manual_seed(31 + T + W);
            auto f64 = at::TensorOptions().dtype(at::kDouble);
            auto round = [&](at::Tensor t) { return t.to(dt).to(at::kDouble); };
            auto x = round(at::randn({B, T, C}, f64)), kern = round(0.5 * at::randn({B, T, C, W}, f64));
            at::Tensor tail = with_tail && W > 1 ? round(at::randn({B, C, W - 1}, f64)) : at::Tensor();
            auto ref = jet::ops::dynamic_conv_ref(x, kern, tail, silu);
            auto cu = [&](const at::Tensor& t) { return t.defined() ? t.to(at::kCUDA, dt) : t; };
            auto y = jet::ops::dynamic_conv_cuda(cu(x), cu(kern), cu(tail), silu);
            ASSERT_EQ(y.scalar_type(), dt);
            // fp32: summation order only; bf16: the output's rounding (≤ 2^-9 relative per value).
            EXPECT_LT(rel_err(y, ref), dt == at::kFloat ? 1e-6 : 5e-3)
                << "dtype " << dt << " W " << W << " T " << T << " tail " << with_tail << " silu " << silu;
            // The dispatcher takes the same kernel (no gradient wanted here).
            EXPECT_TRUE(at::equal(jet::ops::dynamic_conv(cu(x), cu(kern), cu(tail), silu), y));
          }
}

TEST(DynamicConvCuda, GradientsKeepTheAtenPath) {
  auto o = at::TensorOptions().device(at::kCUDA);
  auto x = at::randn({1, 9, 8}, o).requires_grad_(true), kern = at::randn({1, 9, 8, 4}, o);
  auto y = jet::ops::dynamic_conv(x, kern, at::Tensor(), true);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_LT(rel_err(y.detach(), jet::ops::dynamic_conv_ref(x.detach(), kern, at::Tensor(), true)), 1e-6);
}
