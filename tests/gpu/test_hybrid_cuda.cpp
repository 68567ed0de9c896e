// The hybrid model with every layer type on CUDA, under the official random init. fp32 on the device
// equals the CPU (relative error < 1e-4: the chunked ops on CUDA sum in another order); bf16 has no exact
// answer, so its error against the fp32 CPU reference is bounded by the CPU bf16 model's own error on the
// same input (at most 2x that, plus 2e-3). Decode goes through the fused CUDA steps (jet_block_step_cuda
// for JetBlock, linear_attention_step_cuda for the others): prefill + one-token decode must equal the
// chunked forward (fp32: 1e-4 relative; bf16: the same bound as above).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "../model/hybrid_model.h"
#include "model/causal_lm.h"
#include "model/random_init.h"
#include "../ops/test_util.h"

namespace {

using jet::model::CausalLM;

using jet::test::rel_err;  // non-finite input gives +inf, so a NaN fails every bound

at::Tensor prefill_then_decode(const CausalLM& lm, const at::Tensor& ids, int64_t prefill) {
  auto cache = lm.new_cache(ids.size(0), ids.size(1));
  std::vector<at::Tensor> parts{lm.forward(ids.narrow(1, 0, prefill), 0, &cache)};
  for (int64_t t = prefill; t < ids.size(1); ++t) parts.push_back(lm.forward(ids.narrow(1, t, 1), t, &cache));
  return at::cat(parts, 1).to(at::kFloat);
}

TEST(HybridCuda, EveryLayerTypeMatchesCpuAndDecodesThroughFusedSteps) {
  ASSERT_TRUE(at::hasCUDA());
  const auto config = jet::model::ModelConfig::from_json(jet::test::hybrid_all_types_json(), "hybrid");
  CausalLM cpu(config), cpu16(config), gpu32(config), gpu16(config);
  const auto w = jet::model::random_weights(cpu, 11);
  cpu.load_weights(w, at::kFloat, at::kCPU, "hybrid");
  cpu16.load_weights(w, at::kBFloat16, at::kCPU, "hybrid");
  gpu32.load_weights(w, at::kFloat, at::kCUDA, "hybrid");
  gpu16.load_weights(w, at::kBFloat16, at::kCUDA, "hybrid");
  at::InferenceMode guard;
  at::manual_seed(12);
  // 70 tokens: the chunked forward crosses a chunk boundary (64) and the swa window (4) many times.
  const at::Tensor ids = at::randint(0, config.vocab_size, {2, 70}, at::kLong);
  const at::Tensor ref = cpu.forward(ids);
  const double e32 = rel_err(gpu32.forward(ids), ref);
  const double cpu16_err = rel_err(cpu16.forward(ids).to(at::kFloat), ref);
  const double e16 = rel_err(gpu16.forward(ids).to(at::kFloat), ref);
  const double bf16_tol = 2 * cpu16_err + 2e-3;
  std::printf("forward: cuda fp32 rel err %.2e; cuda bf16 %.2e (cpu bf16 %.2e, bound %.2e)\n", e32, e16, cpu16_err,
              bf16_tol);
  EXPECT_LT(e32, 1e-4);
  EXPECT_LT(e16, bf16_tol);

  const at::Tensor full32 = gpu32.forward(ids).to(at::kFloat);
  const double d32 = rel_err(prefill_then_decode(gpu32, ids, 50), full32);
  const double d16 = rel_err(prefill_then_decode(gpu16, ids, 50), ref);
  std::printf("decode (prefill 50 + 20 fused steps): fp32 vs cuda forward %.2e; bf16 vs cpu fp32 %.2e\n", d32, d16);
  EXPECT_LT(d32, 1e-4);
  EXPECT_LT(d16, bf16_tol);
}

}  // namespace
