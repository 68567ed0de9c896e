// Packed projections (model/packed_rows.h): load_weights packs q/k/v and gate/up of every layer into one
// buffer (weights keep their names, shapes and values), the decode step through the packed GEMMs equals
// the same model with the weights bound one by one, and the packing stays out of autograd's way.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "model/packed_rows.h"
#include "tiny_model.h"

namespace jet::model {
namespace {

ModelConfig qwen_like() {
  nlohmann::json j = test::tiny_config_json();
  j["model_type"] = "qwen2";  // q/k/v biases
  return ModelConfig::from_json(j, "tiny qwen2");
}

const at::Tensor& param(const CausalLM& lm, const std::string& name) {
  for (const auto& p : lm.params())
    if (p.name == name) return *p.slot;
  throw std::runtime_error("no parameter " + name);
}

TEST(PackedRows, LoadWeightsPacksAndDecodeMatchesUnpacked) {
  const ModelConfig c = qwen_like();
  ASSERT_TRUE(c.qkv_bias);
  const io::TensorMap w = test::random_weights(c, 7);
  CausalLM packed(c), plain(c);
  packed.load_weights(w, at::kFloat, at::kCPU, "tiny");
  plain.load_weights(w, at::kFloat, at::kCPU, "tiny");
  for (const auto& p : plain.params()) *p.slot = p.slot->clone();  // separate tensors again
  const std::string l0 = "model.layers.0.";
  auto parts = [&](const CausalLM& lm, const std::string& pre, std::vector<std::string> names, const char* suffix) {
    std::vector<const at::Tensor*> out;
    for (const auto& n : names) out.push_back(&param(lm, pre + n + suffix));
    return out;
  };
  for (const char* suffix : {".weight", ".bias"}) {
    const at::Tensor qkv = packed_rows(parts(packed, l0 + "self_attn.", {"q_proj", "k_proj", "v_proj"}, suffix));
    ASSERT_TRUE(qkv.defined()) << suffix;
    EXPECT_EQ(qkv.size(0), c.q_dim() + 2 * c.kv_dim());
    EXPECT_FALSE(packed_rows(parts(plain, l0 + "self_attn.", {"q_proj", "k_proj", "v_proj"}, suffix)).defined());
  }
  EXPECT_TRUE(packed_rows(parts(packed, l0 + "mlp.", {"gate_proj", "up_proj"}, ".weight")).defined());
  for (const auto& p : packed.params()) EXPECT_TRUE(p.slot->equal(w.at(p.name))) << p.name;

  const int64_t B = 3, T = 5;
  const at::Tensor ids = at::randint(3, c.vocab_size, {B, T + 1}, at::kLong);
  const at::Tensor pos = at::full({B}, T, at::kLong);
  std::vector<at::Tensor> logits;
  for (const CausalLM* lm : {&packed, &plain}) {
    Cache cache = lm->new_cache(B, T + 4);
    lm->hidden_rows(ids.narrow(1, 0, T), 0, cache, 0);
    logits.push_back(lm->decode_rows(ids.select(1, T), pos, cache, T + 1));
  }
  EXPECT_TRUE(at::allclose(logits[0], logits[1], 1e-5, 1e-5));
  // With the full forward too (its MLPs are packed).
  EXPECT_TRUE(at::allclose(packed.forward(ids), plain.forward(ids), 1e-5, 1e-5));

  // A weight that requires grad keeps the separate path (autograd cannot split the packed view) and trains.
  for (const auto& p : packed.params())
    if (p.name.find("mlp.gate_proj.weight") != std::string::npos) p.slot->requires_grad_(true);
  const at::Tensor y = packed.forward(ids);
  y.sum().backward();
  const at::Tensor& g0 = param(packed, l0 + "mlp.gate_proj.weight");
  ASSERT_TRUE(g0.grad().defined());
  EXPECT_GT(g0.grad().abs().sum().item<double>(), 0.0);
}

TEST(PackedRows, BindPackedRejectsMismatchedShapes) {
  at::Tensor a, b;
  EXPECT_FALSE(bind_packed({&a, &b}, {at::ones({2, 3}), at::ones({2, 4})}, at::kFloat));
  EXPECT_FALSE(a.defined());
  ASSERT_TRUE(bind_packed({&a, &b}, {at::ones({2, 3}), at::zeros({1, 3})}, at::kFloat));
  EXPECT_TRUE(packed_rows({&a, &b}).equal(at::cat({at::ones({2, 3}), at::zeros({1, 3})})));
  EXPECT_FALSE(packed_rows({&b, &a}).defined());  // out of order
}

}  // namespace
}  // namespace jet::model
