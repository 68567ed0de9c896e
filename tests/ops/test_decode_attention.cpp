// Decode attention's ATen path (the CPU path of the engine's decode step) vs the float64 reference:
// GQA groups, odd key lengths, a visible length per row, strided cache views, fp32 and bf16; the
// dispatcher stays on the ATen path on the CPU; bad shapes fail with a reason.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "ops/attention/decode_attention.h"

namespace {

double rel_err(const at::Tensor& a, const at::Tensor& ref) {
  const at::Tensor x = a.to(at::kDouble);
  EXPECT_FALSE(x.isnan().any().item<bool>());
  return (x - ref).norm().item<double>() / ref.norm().item<double>();
}

TEST(DecodeAttention, AtenMatchesReference) {
  at::manual_seed(7);
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    for (auto [B, H, Hkv, S, D] : std::vector<std::array<int64_t, 5>>{{3, 4, 2, 13, 16}, {2, 9, 3, 37, 64}, {1, 2, 2, 1, 8}}) {
      auto o = at::TensorOptions().dtype(dt);
      at::Tensor q = at::randn({B, H, D}, o);
      at::Tensor kc = at::randn({B + 1, Hkv, S + 5, D}, o), vc = at::randn({B + 1, Hkv, S + 5, D}, o);
      at::Tensor k = kc.narrow(0, 1, B).narrow(2, 0, S), v = vc.narrow(0, 1, B).narrow(2, 0, S);
      at::Tensor pos = at::randint(0, S, {B}, at::kLong);
      for (bool per_row : {true, false}) {
        const at::Tensor p = per_row ? pos : at::Tensor();
        const at::Tensor ref = jet::ops::decode_attention_ref(q, k, v, p);
        const at::Tensor out = jet::ops::decode_attention_aten(q, k, v, p);
        EXPECT_EQ(out.scalar_type(), dt);
        EXPECT_LT(rel_err(out, ref), dt == at::kFloat ? 1e-5 : 3e-2) << "S " << S << " D " << D;
        EXPECT_TRUE(jet::ops::decode_attention(q, k, v, p).equal(out));
        EXPECT_FALSE(jet::ops::decode_attention_cuda_supports(q, k, v));
      }
      // Row b sees exactly slots 0..positions[b]: changing a later slot changes nothing.
      at::Tensor k2 = k.clone();
      const int64_t b = 0, p0 = pos[0].item<int64_t>();
      if (p0 + 1 < S) {
        k2[b].narrow(1, p0 + 1, S - p0 - 1).normal_();
        EXPECT_TRUE(jet::ops::decode_attention_aten(q, k2, v, pos)[b].equal(jet::ops::decode_attention_aten(q, k, v, pos)[b]));
      }
    }
  }
}

TEST(DecodeAttention, BadShapesFail) {
  at::Tensor q = at::randn({2, 3, 8}), k = at::randn({2, 2, 5, 8});
  EXPECT_THROW(jet::ops::decode_attention(q, k, k, {}), std::exception);  // 2 KV heads for 3 query heads
  EXPECT_THROW(jet::ops::decode_attention(at::randn({2, 4, 8}), k, k, at::zeros({3}, at::kLong)), std::exception);
}

}  // namespace
