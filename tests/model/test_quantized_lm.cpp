// A quantized model (--dtype q: the teacher GGUF's Q4_1 / Q8_0 blocks kept, ops/qmatmul) against the fp32
// model on a long text: top-1 agreement of the next-token logits >= 95% through the prefill path (bf16 GEMM of
// dequantized weights), the ATen decode path of small chunks (int8 kernel) and the raw CPU decode step
// (model/cpu_decode.cpp); that step equals the ATen path on the same weights up to rounding, batched rows equal
// single ones; an HF-style float model quantizes its Linear weights to Q8_0 on load.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "core/check.h"
#include "model/attention.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"
#include "tiny_model.h"

namespace jet::model {
namespace {

const char* kTeacher = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

const char* kText =
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
    "movable metal type, oil-based ink and a wooden screw press into a system that could produce books far "
    "faster than scribes. Within fifty years, presses were running in more than two hundred cities across "
    "Europe, and millions of volumes had been printed. The cost of books fell sharply, literacy spread beyond "
    "the clergy and the nobility, and scholars could compare identical copies of a text for the first time. "
    "Historians often link the press to the Reformation, the Scientific Revolution and the rise of newspapers. "
    "Later improvements, such as the steam-powered rotary press of the nineteenth century, made it possible to "
    "print tens of thousands of pages per hour, which in turn made cheap daily newspapers possible. Today most "
    "printing is digital, but the basic idea of reproducing text quickly and cheaply remains the same.";

double agreement(const at::Tensor& a, const at::Tensor& b) {
  return a.argmax(-1).eq(b.argmax(-1)).to(at::kDouble).mean().item<double>();
}

class QuantizedTeacher : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kTeacher)) GTEST_SKIP() << kTeacher << " missing (scripts/setup.sh extracts it)";
    auto ck = load_checkpoint(kTeacher);
    ids_ = ck.tokenizer->encode(kText, true);
    fp32_ = std::make_unique<CausalLM>(ck.config);
    fp32_->load_weights(ck.tensors, at::kFloat, at::kCPU, kTeacher);
    LoadOptions lo;
    lo.quantized = true;
    lo.tokenizer = false;
    auto qk = load_checkpoint(kTeacher, lo);
    ASSERT_FALSE(qk.quantized.empty());
    q_ = std::make_unique<CausalLM>(qk.config);
    q_->load_weights(qk.tensors, at::kFloat, at::kCPU, kTeacher, &qk.quantized);
  }
  std::vector<int32_t> ids_;
  std::unique_ptr<CausalLM> fp32_, q_;
};

TEST_F(QuantizedTeacher, TopOneAgreementWithFp32) {
  at::InferenceMode guard;
  ASSERT_TRUE(q_->quantized());
  EXPECT_LT(q_->weight_bytes(), fp32_->weight_bytes() / 4);  // blocks, not expanded
  const int64_t T = static_cast<int64_t>(ids_.size());
  ASSERT_GE(T, 150);
  const at::Tensor x = at::tensor(std::vector<int64_t>(ids_.begin(), ids_.end()), at::kLong).view({1, T});
  const at::Tensor want = fp32_->forward(x)[0];  // [T, V]
  // Prefill path (one forward of T rows: the bf16 GEMM of dequantized blocks).
  const double prefill = agreement(q_->forward(x)[0], want);
  EXPECT_GE(prefill, 0.95);
  // Decode: 16 prompt tokens, then one token per step through the raw CPU step; and the ATen path (chunks of
  // 4 rows: the int8 kernel) on the same weights.
  const int64_t P = 16;
  Cache cache = q_->new_cache(1, T);
  std::vector<at::Tensor> steps{q_->lm_head(q_->hidden_rows(x.narrow(1, 0, P), 0, cache, 0))[0].narrow(0, P - 1, 1)};
  for (int64_t t = P; t < T; ++t) {
    const at::Tensor id = x[0].narrow(0, t, 1), pos = at::full({1}, t, at::kLong);
    steps.push_back(q_->decode_rows(id, pos, cache, t + 1));
  }
  const at::Tensor decoded = at::cat(steps, 0);  // rows P-1 .. T-1 predict tokens P .. T
  const double dec = agreement(decoded, want.narrow(0, P - 1, T - P + 1));
  EXPECT_GE(dec, 0.95);
  Cache cache2 = q_->new_cache(1, T);
  std::vector<at::Tensor> chunks;
  for (int64_t t = 0; t < T; t += 4) {
    const int64_t n = std::min<int64_t>(4, T - t);
    chunks.push_back(q_->lm_head(q_->hidden_rows(x.narrow(1, t, n), t, cache2, 0))[0]);
  }
  const at::Tensor aten = at::cat(chunks, 0);
  EXPECT_GE(agreement(aten, want), 0.95);
  // The raw step and the ATen path compute the same int8 products; they differ by fp32 rounding, which flips
  // the odd 8-bit rounding of an activation and grows through 30 layers (measured: 2.6% of the logits' norm, about
  // as far as the raw step is from fp32: 2.2%).
  const at::Tensor same = aten.narrow(0, P - 1, T - P + 1);
  const double rel = (decoded - same).norm().item<double>() / same.norm().item<double>();
  EXPECT_LE(rel, 5e-2);
  EXPECT_GE(agreement(decoded, same), 0.97);
  const at::Tensor ref = want.narrow(0, P - 1, T - P + 1);
  std::printf("top-1 agreement with fp32 over %lld tokens: prefill %.3f, decode %.3f; logits' relative distance: raw "
              "step vs ATen path %.4f, raw step vs fp32 %.4f\n", (long long)T, prefill, dec, rel,
              (decoded - ref).norm().item<double>() / ref.norm().item<double>());
  RecordProperty("agreement_prefill", std::to_string(prefill));
  RecordProperty("agreement_decode", std::to_string(dec));
}

TEST_F(QuantizedTeacher, BatchedDecodeRowsEqualSingleRows) {
  at::InferenceMode guard;
  // Three sequences at different positions in one step equal each decoded alone.
  Cache both = q_->new_cache(3, 64), one = q_->new_cache(1, 64);
  const at::Tensor x = at::tensor(std::vector<int64_t>(ids_.begin(), ids_.begin() + 40), at::kLong).view({1, 40});
  const std::vector<int64_t> lens = {7, 19, 30};
  for (int64_t r = 0; r < 3; ++r) q_->hidden_rows(x.narrow(1, 0, lens[r]), 0, both, r);
  const at::Tensor ids = at::stack({x[0][7], x[0][19], x[0][30]}), pos = at::tensor(lens, at::kLong);
  const at::Tensor batched = q_->decode_rows(ids, pos, both, 31);
  for (int64_t r = 0; r < 3; ++r) {
    q_->hidden_rows(x.narrow(1, 0, lens[r]), 0, one, 0);
    const at::Tensor single = q_->decode_rows(ids.narrow(0, r, 1), pos.narrow(0, r, 1), one, lens[r] + 1);
    EXPECT_LE((batched[r] - single[0]).abs().max().item<double>(), 1e-4) << "row " << r;
  }
}

TEST(QuantizedModel, FloatWeightsQuantizedToQ8_0OnLoad) {
  at::InferenceMode guard;
  const auto c = ModelConfig::from_json(test::tiny_config_json(), "tiny");
  const auto w = test::random_weights(c, 5);
  CausalLM f(c), q(c);
  f.load_weights(w, at::kFloat, at::kCPU, "tiny");
  const QuantMap none;
  q.load_weights(w, at::kFloat, at::kCPU, "tiny", &none);
  EXPECT_TRUE(q.quantized());
  at::manual_seed(2);
  const at::Tensor ids = at::randint(0, c.vocab_size, {2, 9}, at::kLong);
  const at::Tensor a = q.forward(ids), b = f.forward(ids);
  // Random tiny weights (width 32: one block per row) and 8-bit activations: measured 6% of the logits' norm.
  EXPECT_LE((a - b).norm().item<double>() / b.norm().item<double>(), 0.1);
  // Every Linear weight is in Q8_0 blocks and equals the float one to half a step of its block (down_proj's width 48
  // is no multiple of 32: its rows' second block is padded with zeros).
  for (const auto& p : q.params()) {
    if (!p.qslot) continue;
    ASSERT_TRUE(p.qslot->defined() && !p.slot->defined()) << p.name;
    EXPECT_EQ(p.qslot->type, gguf::Type::Q8_0);
    const at::Tensor src = w.at(p.name), back = ops::dequantize(*p.qslot);
    ASSERT_EQ(back.sizes(), src.sizes()) << p.name;
    const int64_t pad = p.qslot->block_cols() - src.size(1);
    auto blocks = [&](const at::Tensor& t) { return at::constant_pad_nd(t, {0, pad}).view({src.size(0), -1, 32}); };
    const at::Tensor step = std::get<0>(blocks(src).abs().max(-1, true)) / 127.0;
    EXPECT_TRUE((blocks(back - src).abs() <= step * 0.57 + 1e-7).all().item<bool>()) << p.name;
  }
  EXPECT_THROW(q.load_weights(w, at::kBFloat16, at::kCPU, "tiny", &none), Error);
}

}  // namespace
}  // namespace jet::model
