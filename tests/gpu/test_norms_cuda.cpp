// The fused CUDA RMSNorm / residual add + RMSNorm (ops/norms/norms.cu) and silu(gate) · up
// (ops/activations/silu_mul.cu) vs the float64 references: bf16 and fp32, odd and model widths, one row and
// many, with and without a weight, unaligned views (the scalar path), row-strided halves of a packed gate/up;
// the dispatchers take the kernels without autograd; with it, the norms' backward kernels (plain and gated) vs the
// float64 oracle's gradients.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>  // grad_fn()->name()

#include <string>
#include <vector>

#include "ops/activations/silu_mul.h"
#include "ops/norms/norms.h"

namespace {

double rel_err(const at::Tensor& a, const at::Tensor& ref) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
  EXPECT_FALSE(x.isnan().any().item<bool>());
  return (x - r).norm().item<double>() / r.norm().item<double>();
}

double tol(at::ScalarType dt) { return dt == at::kFloat ? 1e-6 : 8e-3; }

TEST(RmsNormCuda, MatchesReference) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
    for (int64_t D : {1, 37, 64, 1536, 2048, 4100}) {
      for (int64_t rows : {1, 5, 33}) {
        for (bool weighted : {true, false}) {
          for (bool unaligned : {false, true}) {
            at::manual_seed(D * 7 + rows + weighted);
            // Unaligned: views that start one element into their storage (16-byte loads impossible).
            auto make = [&](at::IntArrayRef shape) {
              at::Tensor t = at::randn({shape[0] * D + 1}, o);
              return (unaligned ? t.narrow(0, 1, t.size(0) - 1) : t.narrow(0, 0, t.size(0) - 1)).view(shape);
            };
            const at::Tensor x = make({rows, D}) * 3, y = make({rows, D});
            const at::Tensor w = weighted ? 1 + 0.5 * at::randn({D}, o) : at::Tensor();
            SCOPED_TRACE(testing::Message() << c10::toString(dt) << " D " << D << " rows " << rows << " weighted "
                                            << weighted << " unaligned " << unaligned);
            ASSERT_TRUE(jet::ops::rms_norm_cuda_supports(x, y, w));
            const auto [h0, n] = jet::ops::rms_norm_cuda(x, at::Tensor(), w, 1e-6);
            EXPECT_FALSE(h0.defined());
            EXPECT_EQ(n.scalar_type(), dt);
            EXPECT_LT(rel_err(n, jet::ops::rms_norm_ref(x, w, 1e-6)), tol(dt));
            const auto [h, n2] = jet::ops::rms_norm_cuda(x, y, w, 1e-6);
            EXPECT_TRUE(h.equal(x + y));  // the residual rounds like ATen's add
            EXPECT_LT(rel_err(n2, jet::ops::rms_norm_ref(x + y, w, 1e-6)), tol(dt));
            const auto [hr, nr] = jet::ops::add_rms_norm_ref(x, y, w, 1e-6);
            EXPECT_LT(rel_err(n2, nr), 2 * tol(dt) + (dt == at::kFloat ? 0 : 1e-2));
            // Dispatchers: the kernel, bit for bit.
            EXPECT_TRUE(jet::ops::rms_norm(x, w, 1e-6).equal(n));
            const auto [hd, nd] = jet::ops::add_rms_norm(x, y, w, 1e-6);
            EXPECT_TRUE(hd.equal(h) && nd.equal(n2));
          }
        }
      }
    }
  }
}

// With autograd: the norm is RmsNormFunction (the forward kernel, the backward kernel), the residual add ATen's;
// gradients of x, y and the weight vs the float64 oracle under autograd, bf16 and fp32, odd and model widths
// (SmolLM2's 576), a 3-d input; wider rows than the backward kernel takes stay on the ATen path.
TEST(RmsNormCuda, AutogradTakesBackwardKernel) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
    for (int64_t D : {37, 576, 1024, 1025}) {
      at::manual_seed(D);
      SCOPED_TRACE(testing::Message() << c10::toString(dt) << " D " << D);
      const at::Tensor x0 = at::randn({4, 33, D}, o), y0 = at::randn({4, 33, D}, o), w0 = 1 + 0.3 * at::randn({D}, o);
      const at::Tensor dh = at::randn({4, 33, D}, o), dn = at::randn({4, 33, D}, o);
      at::Tensor x = x0.clone().requires_grad_(true), y = y0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
      auto [h, n] = jet::ops::add_rms_norm(x, y, w, 1e-6);
      ASSERT_TRUE(n.requires_grad());
      const bool kernel = D <= jet::ops::kGatedRmsNormMaxWidth;
      EXPECT_EQ(n.grad_fn()->name().find("RmsNormFunction") != std::string::npos, kernel) << n.grad_fn()->name();
      (h.to(at::kFloat) * dh + n.to(at::kFloat) * dn).sum().backward();
      auto leaf = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble).requires_grad_(true); };
      at::Tensor xd = leaf(x0), yd = leaf(y0), wd = leaf(w0);
      auto [hr, nr] = jet::ops::add_rms_norm_ref(xd, yd, wd, 1e-6);
      (hr * dh.to(at::kCPU, at::kDouble) + nr * dn.to(at::kCPU, at::kDouble)).sum().backward();
      const double t = dt == at::kFloat ? 1e-5 : 1.5e-2;
      EXPECT_LT(rel_err(n, nr), dt == at::kFloat ? 1e-6 : 1e-2);
      EXPECT_LT(rel_err(x.grad(), xd.grad()), t);
      EXPECT_LT(rel_err(y.grad(), yd.grad()), t);
      EXPECT_LT(rel_err(w.grad(), wd.grad()), dt == at::kFloat ? 1e-5 : 2e-2);
      // The kernel directly, fp32 weight for bf16 x, and no weight.
      if (kernel) {
        const auto [gx, gw] = jet::ops::rms_norm_backward_cuda(dn, x0, w0.to(at::kFloat), 1e-6);
        EXPECT_EQ(gw.scalar_type(), at::kFloat);
        at::Tensor xr = leaf(x0), wr = leaf(w0);
        (jet::ops::rms_norm_ref(xr, wr, 1e-6) * dn.to(at::kCPU, at::kDouble)).sum().backward();
        EXPECT_LT(rel_err(gx, xr.grad()), t);
        EXPECT_LT(rel_err(gw, wr.grad()), 1e-4);
        const auto [ux, uw] = jet::ops::rms_norm_backward_cuda(dn, x0, at::Tensor(), 1e-6);
        EXPECT_FALSE(uw.defined());
        at::Tensor xu = leaf(x0);
        (jet::ops::rms_norm_ref(xu, at::Tensor(), 1e-6) * dn.to(at::kCPU, at::kDouble)).sum().backward();
        EXPECT_LT(rel_err(ux, xu.grad()), t);
      }
    }
  }
}

TEST(SiluMulCuda, MatchesReference) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
    for (auto shape : std::vector<std::vector<int64_t>>{{1, 1}, {3, 37}, {32, 1, 8960}, {5, 100003}}) {
      at::manual_seed(shape.back());
      const at::Tensor g = 4 * at::randn(shape, o), u = at::randn(shape, o);
      SCOPED_TRACE(testing::Message() << c10::toString(dt) << " last dim " << shape.back());
      ASSERT_TRUE(jet::ops::silu_mul_cuda_supports(g, u));
      const at::Tensor out = jet::ops::silu_mul_cuda(g, u);
      EXPECT_EQ(out.sizes(), g.sizes());
      EXPECT_LT(rel_err(out, jet::ops::silu_mul_ref(g, u)), tol(dt));
      EXPECT_TRUE(jet::ops::silu_mul(g, u).equal(out));
      // A transposed view and an unaligned one go through contiguous copies / the scalar path.
      if (g.dim() == 2 && g.size(1) > 1) {
        const at::Tensor gt = g.t(), ut = u.t();
        EXPECT_LT(rel_err(jet::ops::silu_mul_cuda(gt, ut), jet::ops::silu_mul_ref(gt, ut)), tol(dt));
        const at::Tensor gs = g.narrow(1, 1, g.size(1) - 1), us = u.narrow(1, 1, u.size(1) - 1);
        EXPECT_LT(rel_err(jet::ops::silu_mul_cuda(gs, us), jet::ops::silu_mul_ref(gs, us)), tol(dt));
      }
      // The halves of a packed gate/up projection: row-strided, read in place.
      const int64_t n = shape.back();
      std::vector<int64_t> both = shape;
      both.back() = 2 * n;
      const at::Tensor gu = at::randn(both, o);
      const at::Tensor gh = gu.narrow(-1, 0, n), uh = gu.narrow(-1, n, n);
      EXPECT_LT(rel_err(jet::ops::silu_mul_cuda(gh, uh), jet::ops::silu_mul_ref(gh, uh)), tol(dt));
    }
  }
}

// The oracle's output and gradients of x, gate and weight for the output gradient dy, in float64 on the CPU.
std::vector<at::Tensor> gated_oracle(const at::Tensor& x, const at::Tensor& z, const at::Tensor& w, const at::Tensor& dy,
                                     double eps) {
  auto leaf = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble).requires_grad_(true); };
  at::Tensor xd = leaf(x), zd = leaf(z), wd = leaf(w);
  const at::Tensor y = jet::ops::gated_rms_norm_ref(xd, zd, wd, eps, true);
  (y * dy.to(at::kCPU, at::kDouble)).sum().backward();
  return {y.detach(), xd.grad(), zd.grad(), wd.grad()};
}

TEST(GatedRmsNormCuda, KernelsMatchOracleWithGradients) {
  ASSERT_TRUE(at::hasCUDA());
  const double eps = 1e-5;
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
    for (int64_t V : {1, 37, 128, 256, 300, 1024}) {
      for (bool fp32_weight : {true, false}) {
        at::manual_seed(V * 3 + fp32_weight);
        const int64_t B = 2, T = 7, H = 3;
        SCOPED_TRACE(testing::Message() << c10::toString(dt) << " V " << V << " fp32 weight " << fp32_weight);
        // x contiguous [B, T, H, V]; the gate a column slice of a wider [B, T, H·V + 5] GEMM output, as the
        // blocks pass it; dy a row-strided view.
        const at::Tensor x = 2 * at::randn({B, T, H, V}, o);
        const at::Tensor z = (3 * at::randn({B, T, H * V + 5}, o)).narrow(-1, 2, H * V).unflatten(-1, {H, V});
        const at::Tensor dy = at::randn({B, T, H, V + 3}, o).narrow(-1, 1, V);
        const at::Tensor w = (1 + 0.5 * at::randn({V}, o)).to(fp32_weight ? at::kFloat : dt);
        ASSERT_TRUE(jet::ops::gated_rms_norm_cuda_supports(x, z, w));
        const auto want = gated_oracle(x, z, w, dy, eps);
        const at::Tensor y = jet::ops::gated_rms_norm_cuda(x, z, w, eps);
        EXPECT_EQ(y.scalar_type(), dt);
        EXPECT_LT(rel_err(y, want[0]), tol(dt));
        const auto g = jet::ops::gated_rms_norm_backward_cuda(dy, x, z, w, eps);
        EXPECT_EQ(g[2].scalar_type(), w.scalar_type());
        const double gt = dt == at::kFloat ? 1e-5 : 1.5e-2;
        // One channel: x is its own scale, so dx = inv·dn·(1 − n²) = inv·dn·eps/(x² + eps) is a cancellation that
        // fp32 resolves only to ~1e-4 of its (tiny) size (measured 1.9e-4 on the H200); every other width to gt.
        const double gx = V == 1 && dt == at::kFloat ? 1e-3 : gt;
        EXPECT_LT(rel_err(g[0], want[1]), gx) << "dx";
        EXPECT_LT(rel_err(g[1], want[2]), gt) << "dgate";
        EXPECT_LT(rel_err(g[2], want[3]), fp32_weight || dt == at::kFloat ? gt : 2e-2) << "dweight";
        // The dispatcher: the kernel bit for bit without autograd; the autograd function with it.
        EXPECT_TRUE(jet::ops::gated_rms_norm(x, z, w, eps).equal(y));
        const at::Tensor xa = x.clone().requires_grad_(true), za = z.clone().requires_grad_(true),
                         wa = w.clone().requires_grad_(true);
        const at::Tensor ya = jet::ops::gated_rms_norm(xa, za, wa, eps);
        ASSERT_TRUE(ya.requires_grad());
        ya.backward(dy);
        EXPECT_TRUE(ya.detach().equal(y));
        EXPECT_LT(rel_err(xa.grad(), want[1]), gx) << "autograd dx";
        EXPECT_LT(rel_err(za.grad(), want[2]), gt) << "autograd dgate";
        EXPECT_LT(rel_err(wa.grad(), want[3]), fp32_weight || dt == at::kFloat ? gt : 2e-2) << "autograd dweight";
      }
    }
  }
}

TEST(GatedRmsNormCuda, ManyRowsPerWarpAndEdgeCases) {
  ASSERT_TRUE(at::hasCUDA());
  auto o = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  at::manual_seed(11);
  // SmolLM2's JetBlock at B16×512 (9 heads × 128): more rows than warps in the grid, the weight gradient summed
  // over many blocks.
  const at::Tensor x = at::randn({16, 512, 9, 128}, o), z = at::randn({16, 512, 9, 128}, o);
  const at::Tensor dy = at::randn({16, 512, 9, 128}, o);
  const at::Tensor w = 1 + 0.1 * at::randn({128}, o.dtype(at::kFloat));
  const auto want = gated_oracle(x, z, w, dy, 1e-6);
  EXPECT_LT(rel_err(jet::ops::gated_rms_norm_cuda(x, z, w, 1e-6), want[0]), tol(at::kBFloat16));
  const auto g = jet::ops::gated_rms_norm_backward_cuda(dy, x, z, w, 1e-6);
  EXPECT_LT(rel_err(g[0], want[1]), 1.5e-2);
  EXPECT_LT(rel_err(g[1], want[2]), 1.5e-2);
  EXPECT_LT(rel_err(g[2], want[3]), 1e-4);  // fp32 sums of 73,728 rows
  // No rows: empty outputs, a zero weight gradient.
  const at::Tensor e = at::empty({0, 3, 128}, o);
  EXPECT_EQ(jet::ops::gated_rms_norm_cuda(e, e, w, 1e-6).numel(), 0);
  EXPECT_TRUE(jet::ops::gated_rms_norm_backward_cuda(e, e, e, w, 1e-6)[2].eq(0).all().item<bool>());
  // Outside the kernels: too wide, mixed dtypes, no weight (the ATen path takes them).
  const at::Tensor wide = at::randn({2, jet::ops::kGatedRmsNormMaxWidth + 1}, o);
  EXPECT_FALSE(jet::ops::gated_rms_norm_cuda_supports(wide, wide, at::ones({wide.size(1)}, o)));
  EXPECT_FALSE(jet::ops::gated_rms_norm_cuda_supports(x, z.to(at::kFloat), w));
  EXPECT_FALSE(jet::ops::gated_rms_norm_cuda_supports(x, z, at::Tensor()));
}

// The packed SwiGLU gate's backward kernel (and the autograd function around it) vs the float64 oracle: bf16 and
// fp32, odd F (the scalar path) and model widths (16-byte packs), gu as a row-strided view.
TEST(SiluMulCuda, PackedBackwardMatchesOracle) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
    for (int64_t F : {1, 37, 1536}) {
      for (bool strided : {false, true}) {
        at::manual_seed(F + strided);
        SCOPED_TRACE(testing::Message() << c10::toString(dt) << " F " << F << " strided " << strided);
        const at::Tensor wide = 3 * at::randn({2, 9, 2 * F + (strided ? 8 : 0)}, o);
        const at::Tensor gu = wide.narrow(-1, 0, 2 * F), dy = at::randn({2, 9, F}, o);
        at::Tensor gd = gu.to(at::kCPU, at::kDouble).requires_grad_(true);
        const at::Tensor want = jet::ops::silu_mul_ref(gd.narrow(-1, 0, F), gd.narrow(-1, F, F));
        (want * dy.to(at::kCPU, at::kDouble)).sum().backward();
        const double t = dt == at::kFloat ? 1e-5 : 1e-2;
        EXPECT_LT(rel_err(jet::ops::silu_mul_packed_backward_cuda(dy, gu), gd.grad()), t);
        at::Tensor ga = wide.clone().requires_grad_(true);
        const at::Tensor y = jet::ops::silu_mul_packed(ga.narrow(-1, 0, 2 * F));
        ASSERT_NE(y.grad_fn()->name().find("SiluMulPacked"), std::string::npos) << y.grad_fn()->name();
        EXPECT_LT(rel_err(y, want), tol(dt));
        y.backward(dy);
        EXPECT_LT(rel_err(ga.grad().narrow(-1, 0, 2 * F), gd.grad()), t);
      }
    }
  }
}

}  // namespace
