// CausalLM on CUDA (plain ATen ops): fp32 logits equal the CPU's; prefill + one-token decode through
// the cache equals the full forward on the device. bf16 has no exact answer (summation order differs),
// so its error against the fp32 CPU reference is bounded by the CPU bf16 model's own error on the same
// input: at most 2x that, plus 1e-3.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "../model/tiny_model.h"
#include "model/causal_lm.h"
#include "../ops/test_util.h"

namespace {

using jet::test::rel_err;  // non-finite input gives +inf, so a NaN fails every bound

TEST(CausalLMCuda, MatchesCpuAndDecodes) {
  ASSERT_TRUE(at::hasCUDA());
  auto config = jet::model::ModelConfig::from_json(jet::test::tiny_config_json(), "tiny");
  auto weights = jet::test::random_weights(config, 5);
  jet::model::CausalLM cpu(config), cpu16(config), gpu32(config), gpu16(config);
  cpu.load_weights(weights, at::kFloat, at::kCPU, "tiny");
  cpu16.load_weights(weights, at::kBFloat16, at::kCPU, "tiny");
  gpu32.load_weights(weights, at::kFloat, at::kCUDA, "tiny");
  gpu16.load_weights(weights, at::kBFloat16, at::kCUDA, "tiny");
  at::InferenceMode guard;
  at::Tensor ids = at::randint(0, config.vocab_size, {2, 19}, at::kLong);
  at::Tensor ref = cpu.forward(ids);
  EXPECT_LT(rel_err(gpu32.forward(ids), ref), 1e-5);
  const double bf16_tol = 2 * rel_err(cpu16.forward(ids).to(at::kFloat), ref) + 1e-3;
  EXPECT_LT(rel_err(gpu16.forward(ids).to(at::kFloat), ref), bf16_tol);

  for (auto* lm : {&gpu32, &gpu16}) {
    at::Tensor full = lm->forward(ids).to(at::kFloat);
    auto cache = lm->new_cache(2, 19);
    std::vector<at::Tensor> parts{lm->forward(ids.narrow(1, 0, 7), 0, &cache)};
    for (int64_t t = 7; t < 19; ++t) parts.push_back(lm->forward(ids.narrow(1, t, 1), t, &cache));
    at::Tensor decoded = at::cat(parts, 1).to(at::kFloat);
    if (lm->dtype() == at::kFloat)
      EXPECT_LT(rel_err(decoded, full), 1e-5);
    else
      EXPECT_LT(rel_err(decoded, ref), bf16_tol);
  }
}

}  // namespace
