// JetBlock's training path on CUDA (the projections in one GEMM, the gates, dynamic conv and gated RMSNorm kernels
// with their backward kernels, the op): output and the gradients of x and of every parameter against autograd
// through the float64 layer formulas on the CPU. fp32 at small heads (the op's ATen path, the fused kernels
// around it at fp32 precision: 1e-4) and bf16 at SmolLM2's head widths (K 64, V 128: the op's CUDA kernels too;
// bf16 roundings everywhere, so only a bound that a wrong gradient would break by far: 0.1).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "../blocks/jet_formulas.h"
#include "../ops/test_util.h"
#include "model/blocks/blocks.h"

namespace {

using jet::test::rel_err;

void check_training(at::ScalarType dt, int64_t H, int64_t K, double expand_v, int64_t T, double tol) {
  jet::model::JetBlockConfig c;
  c.hidden_size = 48, c.num_heads = H, c.head_dim = K, c.expand_v = expand_v, c.dconv_generator_reduction = 8;
  const auto b = jet::model::make_jet_block(c, 5);
  at::manual_seed(6);
  for (auto& [name, t] : b->parameters())  // the kernel generator and norm away from their zero / one init
    if (name.find("kernel_generator") != std::string::npos || name.find("norm") != std::string::npos)
      t = t + 0.1 * at::randn(t.sizes());
  std::map<std::string, at::Tensor> ref;
  b->to(at::kCUDA, dt);
  for (auto& [name, t] : b->parameters()) {
    t = t.detach().requires_grad_(true);
    ref[name] = t.detach().to(at::kCPU, at::kDouble).requires_grad_(true);
  }
  const int64_t V = static_cast<int64_t>(K * expand_v);
  const at::Tensor x = at::randn({2, T, 48}).to(dt), dy = at::randn({2, T, 48}).to(dt);
  const at::Tensor xg = x.to(at::kCUDA).requires_grad_(true), xd = x.to(at::kDouble).requires_grad_(true);
  const at::Tensor y = b->forward(xg);
  (y.to(at::kFloat) * dy.to(at::kCUDA, at::kFloat)).sum().backward();
  const at::Tensor want = jet::test::jet_formulas(xd, H, K, V, [&](const char* n) { return ref.at(n); });
  (want * dy.to(at::kDouble)).sum().backward();
  EXPECT_LT(rel_err(y, want), tol) << "y";
  EXPECT_LT(rel_err(xg.grad(), xd.grad()), tol) << "dx";
  for (auto& [name, t] : b->parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_LT(rel_err(t.grad(), ref.at(name).grad()), tol) << name;
  }
}

TEST(JetBlockCuda, TrainingGradientsMatchFloat64FormulasFp32) { check_training(at::kFloat, 2, 8, 2.0, 67, 1e-4); }

TEST(JetBlockCuda, TrainingGradientsMatchFloat64FormulasBf16) { check_training(at::kBFloat16, 2, 64, 2.0, 130, 0.1); }

}  // namespace
