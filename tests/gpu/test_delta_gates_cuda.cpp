// The delta-rule gates' CUDA kernels (ops/gates/delta_gates.cu) vs the float64 oracle: outputs and the gradients
// of a, b, A_log and dt_bias, bf16 and fp32, column slices of a wider GEMM output, odd head counts, more elements
// than the grid has threads (the per-head sums over many blocks), one gradient missing; the dispatcher takes the
// forward kernel without autograd and the autograd function with it.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <vector>

#include "../ops/test_util.h"
#include "ops/gates/delta_gates.h"

namespace {

using jet::test::rel_err;

// Oracle outputs {g, β} and gradients {da, db, dA_log, ddt_bias} in float64 on the CPU.
std::vector<at::Tensor> oracle(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log, const at::Tensor& dt_bias,
                               const at::Tensor& dg, const at::Tensor& dbeta) {
  auto leaf = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble).requires_grad_(true); };
  at::Tensor ad = leaf(a), bd = leaf(b), Ad = leaf(A_log), dd = leaf(dt_bias);
  const auto [g, beta] = jet::ops::delta_gates_ref(ad, bd, Ad, dd);
  at::Tensor loss = at::zeros({}, at::kDouble);
  if (dg.defined()) loss = loss + (g * dg.to(at::kCPU, at::kDouble)).sum();
  if (dbeta.defined()) loss = loss + (beta * dbeta.to(at::kCPU, at::kDouble)).sum();
  loss.backward();
  auto grad = [](const at::Tensor& t) { return t.grad().defined() ? t.grad() : at::zeros_like(t); };
  return {g.detach(), beta.detach(), grad(ad), grad(bd), grad(Ad), grad(dd)};
}

TEST(DeltaGatesCuda, KernelsMatchOracleWithGradients) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (auto [rows, H] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {37, 5}, {8192, 9}, {3000, 12}}) {
      for (int missing : {0, 1, 2}) {  // 1: no dg, 2: no dβ
        SCOPED_TRACE(testing::Message() << c10::toString(dt) << " rows " << rows << " H " << H << " missing " << missing);
        at::manual_seed(rows + H + missing);
        auto o = at::TensorOptions().device(at::kCUDA);
        const at::Tensor wide = (4 * at::randn({rows, 2 * H + 7}, o)).to(dt);
        const at::Tensor a = wide.narrow(-1, 3, H), b = wide.narrow(-1, H + 5, H);
        const at::Tensor A_log = at::randn({H}, o), dt_bias = at::randn({H}, o);
        const at::Tensor dg = missing == 1 ? at::Tensor() : at::randn({rows, H}, o);
        const at::Tensor dbeta = missing == 2 ? at::Tensor() : at::randn({rows, H}, o);
        ASSERT_TRUE(jet::ops::delta_gates_cuda_supports(a, b, A_log, dt_bias));
        const auto want = oracle(a, b, A_log, dt_bias, dg, dbeta);
        const auto [g, beta] = jet::ops::delta_gates_cuda(a, b, A_log, dt_bias);
        EXPECT_EQ(g.scalar_type(), at::kFloat);
        EXPECT_LT(rel_err(g, want[0]), 1e-5);
        EXPECT_LT(rel_err(beta, want[1]), 1e-5);
        const auto gr = jet::ops::delta_gates_backward_cuda(dg, dbeta, a, b, A_log, dt_bias);
        const double tol = dt == at::kFloat ? 1e-5 : 8e-3;  // da, db rounded to bf16
        const char* names[] = {"da", "db", "dA_log", "ddt_bias"};
        for (int i = 0; i < 4; ++i) EXPECT_LT(rel_err(gr[i], want[2 + i]), i < 2 ? tol : 1e-4) << names[i];
        EXPECT_EQ(gr[0].scalar_type(), dt);
        // The dispatcher: the kernel bit for bit without autograd; the autograd function with it.
        const auto [g2, b2] = jet::ops::delta_gates(a, b, A_log, dt_bias);
        EXPECT_TRUE(g2.equal(g) && b2.equal(beta));
        if (missing == 0) {
          const at::Tensor w = wide.clone().requires_grad_(true), Al = A_log.clone().requires_grad_(true),
                           dtb = dt_bias.clone().requires_grad_(true);
          const auto [ga, ba] = jet::ops::delta_gates(w.narrow(-1, 3, H), w.narrow(-1, H + 5, H), Al, dtb);
          ASSERT_TRUE(ga.requires_grad());
          ((ga * dg).sum() + (ba * dbeta).sum()).backward();
          EXPECT_LT(rel_err(w.grad().narrow(-1, 3, H), want[2]), tol);
          EXPECT_LT(rel_err(w.grad().narrow(-1, H + 5, H), want[3]), tol);
          EXPECT_EQ(w.grad().narrow(-1, 0, 3).abs().sum().item<double>(), 0.0);
          EXPECT_LT(rel_err(Al.grad(), want[4]), 1e-4);
          EXPECT_LT(rel_err(dtb.grad(), want[5]), 1e-4);
        }
      }
    }
  }
}

}  // namespace
