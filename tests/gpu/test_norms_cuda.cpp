// The fused CUDA RMSNorm / residual add + RMSNorm (ops/norms/norms.cu) and silu(gate) · up
// (ops/activations/silu_mul.cu) vs the float64 references: bf16 and fp32, odd and model widths, one row and
// many, with and without a weight, unaligned views (the scalar path), row-strided halves of a packed gate/up;
// the dispatchers take the kernels without autograd and the ATen path with it.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

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

TEST(RmsNormCuda, AutogradTakesAtenPath) {
  ASSERT_TRUE(at::hasCUDA());
  auto o = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA);
  at::manual_seed(5);
  const at::Tensor x = at::randn({4, 3, 40}, o).requires_grad_(true), y = at::randn({4, 3, 40}, o);
  const at::Tensor w = at::randn({40}, o);
  auto [h, n] = jet::ops::add_rms_norm(x, y, w, 1e-6);
  ASSERT_TRUE(n.requires_grad());
  (h.sum() + (n * n).sum()).backward();
  const at::Tensor xd = x.detach().to(at::kCPU, at::kDouble).requires_grad_(true);
  auto [hr, nr] = jet::ops::add_rms_norm_ref(xd, y.cpu(), w.cpu(), 1e-6);
  (hr.sum() + (nr * nr).sum()).backward();
  EXPECT_LT(rel_err(x.grad(), xd.grad()), 1e-5);
  EXPECT_LT(rel_err(n, nr), 1e-6);
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

}  // namespace
