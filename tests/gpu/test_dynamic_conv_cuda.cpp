// CUDA forward and backward of the dynamic causal conv (dynamic_conv_cuda.h) vs the float64 oracle
// (dynamic_conv_ref, and autograd through it for the gradients): odd lengths, with and without a tail, SiLU
// on and off, fp32 and bf16; dynamic_conv takes the forward kernel on CUDA without gradients and the custom
// autograd function (CUDA forward + backward) with them.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>  // grad_fn()->name()

#include <algorithm>
#include <cstdio>
#include <string>
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

// Gradients through dynamic_conv on CUDA (the custom autograd function: CUDA forward + CUDA backward) vs
// the float64 oracle under autograd: x, kernels and tail; runs of 128 tokens per thread, so T = 1000 crosses
// seven run boundaries, and the tail's gradient comes from the first run only. Inputs and dy are rounded
// to bf16 once, so the fp32 and bf16 runs see exactly the oracle's inputs.
TEST(DynamicConvCuda, BackwardMatchesFloat64Autograd) {
  double worst[2] = {0, 0};  // fp32, bf16
  for (int64_t W : {4, 3, 1})
    for (int64_t T : {1, 2, 5, 70, 1000})
      for (bool with_tail : {false, true})
        for (bool silu : {true, false}) {
          const int64_t B = 2, C = T == 70 ? 300 : 40;  // C = 300: three channel blocks, a partial last one
          at::manual_seed(77 + T + W);
          auto f64 = at::TensorOptions().dtype(at::kDouble);
          auto round = [&](at::Tensor t) { return t.to(at::kBFloat16).to(at::kDouble); };
          auto x = round(at::randn({B, T, C}, f64)), kern = round(0.5 * at::randn({B, T, C, W}, f64));
          auto dy = round(at::randn({B, T, C}, f64));
          at::Tensor tail = with_tail ? round(at::randn({B, C, W - 1}, f64)) : at::Tensor();
          auto leaf = [](const at::Tensor& t) { return t.defined() ? t.clone().requires_grad_(true) : t; };
          auto xr = leaf(x), kr = leaf(kern), tr = leaf(tail);
          jet::ops::dynamic_conv_ref(xr, kr, tr, silu).backward(dy);
          for (auto dt : {at::kFloat, at::kBFloat16}) {
            auto cu = [&](const at::Tensor& t) { return t.defined() ? t.to(at::kCUDA, dt).requires_grad_(true) : t; };
            auto xc = cu(x), kc = cu(kern), tc = cu(tail);
            auto y = jet::ops::dynamic_conv(xc, kc, tc, silu);
            ASSERT_NE(y.grad_fn()->name().find("DynamicConvFunction"), std::string::npos) << y.grad_fn()->name();
            y.backward(dy.to(at::kCUDA, dt));
            // fp32: summation order only; bf16: the gradients' rounding (≤ 2^-9 relative per value).
            const double tol = dt == at::kFloat ? 1e-5 : 5e-3;
            std::vector<std::pair<at::Tensor, at::Tensor>> pairs{{xc.grad(), xr.grad()}, {kc.grad(), kr.grad()}};
            if (with_tail && W > 1) pairs.push_back({tc.grad(), tr.grad()});
            for (size_t n = 0; n < pairs.size(); ++n) {
              ASSERT_TRUE(pairs[n].first.defined());
              ASSERT_EQ(pairs[n].first.scalar_type(), dt);
              const double e = rel_err(pairs[n].first, pairs[n].second);
              worst[dt == at::kBFloat16] = std::max(worst[dt == at::kBFloat16], e);
              EXPECT_LT(e, tol) << "grad of " << (n == 0 ? "x" : n == 1 ? "kernels" : "tail") << " dtype " << dt
                                << " W " << W << " T " << T << " tail " << with_tail << " silu " << silu;
            }
            if (with_tail && W == 1) {
              EXPECT_EQ(tc.grad().numel(), 0);
            }
          }
        }
  std::printf("dynamic conv backward, largest relative error: fp32 %.2e, bf16 %.2e\n", worst[0], worst[1]);
}

// Only the gradients asked for are computed (the others undefined) and they equal the full call's, also
// from misaligned taps (the forward's too); a wider conv (W = 5) keeps the ATen autograd path and its gradients.
TEST(DynamicConvCuda, BackwardPartialAndWideFallback) {
  auto o = at::TensorOptions().device(at::kCUDA);
  const int64_t B = 2, T = 300, C = 64, W = 4;
  auto x = at::randn({B, T, C}, o), kern = at::randn({B, T, C, W}, o), tail = at::randn({B, C, W - 1}, o);
  auto dy = at::randn({B, T, C}, o);
  auto all = jet::ops::dynamic_conv_backward_cuda(dy, x, kern, tail, true, true, true, true);
  auto only_dx = jet::ops::dynamic_conv_backward_cuda(dy, x, kern, tail, true, true, false, false);
  EXPECT_TRUE(at::equal(only_dx[0], all[0]));
  EXPECT_FALSE(only_dx[1].defined());
  EXPECT_FALSE(only_dx[2].defined());
  // Taps that start one element off the 16-byte alignment of the W = 4 vector loads (copied first).
  auto shifted = at::empty({kern.numel() + 1}, o).narrow(0, 1, kern.numel()).view(kern.sizes()).copy_(kern);
  ASSERT_TRUE(shifted.is_contiguous());
  auto from_shifted = jet::ops::dynamic_conv_backward_cuda(dy, x, shifted, tail, true, true, true, true);
  for (int n = 0; n < 3; ++n) EXPECT_TRUE(at::equal(from_shifted[n], all[n]));
  // The forward's W = 4 vector loads and its scalar fallback for such taps: the same sums in the same order.
  EXPECT_TRUE(at::equal(jet::ops::dynamic_conv_cuda(x, shifted, tail, true), jet::ops::dynamic_conv_cuda(x, kern, tail, true)));
  auto only_dk = jet::ops::dynamic_conv_backward_cuda(dy, x, kern, at::Tensor(), true, false, true, true);
  EXPECT_FALSE(only_dk[0].defined());
  EXPECT_FALSE(only_dk[2].defined());  // no tail, no tail gradient
  auto xw = x.clone().requires_grad_(true), k5 = at::randn({B, T, C, 5}, o).requires_grad_(true);
  auto y = jet::ops::dynamic_conv(xw, k5, at::Tensor(), true);
  EXPECT_EQ(y.grad_fn()->name().find("DynamicConvFunction"), std::string::npos);
  y.backward(dy);
  auto xd = x.to(at::kDouble).cpu().requires_grad_(true), kd = k5.detach().to(at::kDouble).cpu().requires_grad_(true);
  jet::ops::dynamic_conv_ref(xd, kd, at::Tensor(), true).backward(dy.to(at::kDouble).cpu());
  EXPECT_LT(rel_err(xw.grad(), xd.grad()), 1e-5);
  EXPECT_LT(rel_err(k5.grad(), kd.grad()), 1e-5);
  EXPECT_THROW(jet::ops::dynamic_conv_backward_cuda(dy, x, k5.detach(), at::Tensor(), true, true, true, true),
               std::exception);
}

// x as a column slice of a wider GEMM output (JetBlock's v inside its one input GEMM): the kernels read its rows
// in place, forward and backward equal the contiguous copy's bit for bit; B = 1 and T = 1 slices too.
TEST(DynamicConvCuda, RowStridedInputEqualsContiguous) {
  auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{2, 300}, {1, 7}, {3, 1}}) {
    const int64_t C = 96, W = 4;
    at::manual_seed(B * 1000 + T);
    const at::Tensor wide = at::randn({B, T, 3 * C + 5}, o), x = wide.narrow(-1, C + 1, C);
    const at::Tensor kern = at::randn({B, T, C, W}, o), tail = at::randn({B, C, W - 1}, o), dy = at::randn({B, T, C}, o);
    ASSERT_FALSE(x.is_contiguous());
    const at::Tensor xc = x.contiguous();
    EXPECT_TRUE(at::equal(jet::ops::dynamic_conv_cuda(x, kern, tail, true), jet::ops::dynamic_conv_cuda(xc, kern, tail, true)));
    const auto a = jet::ops::dynamic_conv_backward_cuda(dy, x, kern, tail, true, true, true, true);
    const auto b = jet::ops::dynamic_conv_backward_cuda(dy, xc, kern, tail, true, true, true, true);
    for (int n = 0; n < 3; ++n) EXPECT_TRUE(at::equal(a[n], b[n])) << "B " << B << " T " << T << " output " << n;
  }
}

// Shared taps [C, W] (JetBlock's kernel-generator bias) through the CUDA forward and backward, and through
// dynamic_conv's autograd function: every gradient, the shared taps' summed over batch and tokens inside the
// backward kernel (runs of 128 tokens: T = 1000 sums eight runs per channel), against the float64 oracle; W = 4 (vector
// taps) and W = 3; the shared taps in bf16 for bf16 (the bias parameter's dtype) and fp32.
TEST(DynamicConvCuda, SharedTapsMatchFloat64Autograd) {
  for (auto dt : {at::kFloat, at::kBFloat16})
    for (int64_t W : {4, 3})
      for (int64_t T : {1, 70, 1000}) {
        const int64_t B = 2, C = 300;
        at::manual_seed(91 + T + W);
        auto f64 = at::TensorOptions().dtype(at::kDouble);
        auto round = [&](at::Tensor t) { return t.to(at::kBFloat16).to(at::kDouble); };
        auto x = round(at::randn({B, T, C}, f64)), kern = round(0.5 * at::randn({B, T, C, W}, f64));
        auto tail = round(at::randn({B, C, W - 1}, f64)), shared = round(0.5 * at::randn({C, W}, f64));
        auto dy = round(at::randn({B, T, C}, f64));
        auto leaf = [](const at::Tensor& t) { return t.clone().requires_grad_(true); };
        auto xr = leaf(x), kr = leaf(kern), tr = leaf(tail), sr = leaf(shared);
        const at::Tensor want = jet::ops::dynamic_conv_ref(xr, kr, tr, true, sr);
        want.backward(dy);
        auto cu = [&](const at::Tensor& t) { return t.to(at::kCUDA, dt).requires_grad_(true); };
        auto xc = cu(x), kc = cu(kern), tc = cu(tail), sc = cu(shared);
        auto y = jet::ops::dynamic_conv(xc, kc, tc, true, sc);
        ASSERT_NE(y.grad_fn()->name().find("DynamicConvFunction"), std::string::npos) << y.grad_fn()->name();
        y.backward(dy.to(at::kCUDA, dt));
        const double tol = dt == at::kFloat ? 1e-5 : 5e-3;
        SCOPED_TRACE(testing::Message() << c10::toString(dt) << " W " << W << " T " << T);
        EXPECT_LT(rel_err(y, want), dt == at::kFloat ? 1e-6 : 5e-3);
        EXPECT_LT(rel_err(xc.grad(), xr.grad()), tol) << "dx";
        EXPECT_LT(rel_err(kc.grad(), kr.grad()), tol) << "dkernels";
        EXPECT_LT(rel_err(tc.grad(), tr.grad()), tol) << "dtail";
        EXPECT_LT(rel_err(sc.grad(), sr.grad()), tol) << "dshared";
        EXPECT_EQ(sc.grad().scalar_type(), dt);
        // Without autograd: the same forward kernel.
        c10::NoGradGuard no_grad;
        EXPECT_TRUE(at::equal(jet::ops::dynamic_conv(xc, kc, tc, true, sc), y));
      }
}
