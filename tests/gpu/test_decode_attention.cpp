// The CUDA decode-attention kernels (ops/attention/decode_attention.cu: CUDA cores and tensor cores) vs the
// float64 reference and the ATen path: bf16 and fp32, head dims 64 and 128, GQA groups 1..16, odd key lengths,
// a visible length per row, caches read through strided views, one split and many, inside a CUDA graph; and the
// engine with attn + swa layers of head dim 64 (the kernel in its decode step, the SWA ring wrapping) on CUDA
// graphs vs the CPU engine.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <memory>
#include <tuple>

#include "engine/engine.h"
#include "model/layers.h"
#include "model/random_init.h"
#include "ops/attention/decode_attention.h"
#include "../ops/test_util.h"

namespace {

using jet::ops::decode_attention_aten;
using jet::ops::decode_attention_cuda;
using jet::ops::decode_attention_cuda_supports;
using jet::ops::decode_attention_ref;
using jet::ops::DecodeKernel;

using jet::test::rel_err;  // non-finite input gives +inf, so a NaN fails every bound

struct Inputs {
  at::Tensor q, k, v, positions;  // k, v: views of a larger cache (more rows, more slots)
};

// B rows, H query heads over Hkv KV heads, S visible-at-most slots; positions drawn in [0, S) with the
// last row at S - 1 (the whole key length).
Inputs make(int64_t B, int64_t H, int64_t Hkv, int64_t S, int64_t D, at::ScalarType dt, uint64_t seed) {
  at::manual_seed(seed);
  auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
  Inputs in;
  in.q = at::randn({B, H, D}, o);
  at::Tensor kc = at::randn({B + 2, Hkv, S + 13, D}, o), vc = at::randn({B + 2, Hkv, S + 13, D}, o);
  in.k = kc.narrow(0, 1, B).narrow(2, 0, S);
  in.v = vc.narrow(0, 1, B).narrow(2, 0, S);
  in.positions = at::randint(0, S, {B}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  in.positions[B - 1].fill_(S - 1);
  return in;
}

double tolerance(at::ScalarType dt) { return dt == at::kFloat ? 1e-5 : 1.5e-2; }

using Case = std::tuple<at::ScalarType, int64_t /*D*/, int64_t /*H*/, int64_t /*Hkv*/>;
class DecodeAttentionCuda : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeAttentionCuda, MatchesReference) {
  ASSERT_TRUE(at::hasCUDA());
  const auto [dt, D, H, Hkv] = GetParam();
  uint64_t seed = 1;
  // (B, S): odd lengths, one slot, one row with many splits, many rows with one split.
  for (auto [B, S] : std::vector<std::pair<int64_t, int64_t>>{{5, 37}, {3, 1}, {1, 4099}, {7, 1000}, {300, 129}}) {
    const Inputs in = make(B, H, Hkv, S, D, dt, seed++);
    ASSERT_TRUE(decode_attention_cuda_supports(in.q, in.k, in.v));
    // The tensor-core kernel takes bf16 with up to 16 query heads per KV head, the CUDA-core one up to 8.
    EXPECT_EQ(decode_attention_cuda_supports(in.q, in.k, in.v, DecodeKernel::mma), dt == at::kBFloat16 && H / Hkv <= 16);
    EXPECT_EQ(decode_attention_cuda_supports(in.q, in.k, in.v, DecodeKernel::simt), H / Hkv <= 8);
    for (bool per_row : {true, false}) {
      const at::Tensor pos = per_row ? in.positions : at::Tensor();
      const at::Tensor out = decode_attention_cuda(in.q, in.k, in.v, pos);
      ASSERT_EQ(out.sizes(), in.q.sizes());
      ASSERT_EQ(out.scalar_type(), dt);
      const at::Tensor ref = decode_attention_ref(in.q, in.k, in.v, pos);
      EXPECT_LT(rel_err(out, ref), tolerance(dt)) << "B " << B << " S " << S << " per_row " << per_row;
       for (auto which : {DecodeKernel::simt, DecodeKernel::mma}) {
        if (!decode_attention_cuda_supports(in.q, in.k, in.v, which)) continue;
        EXPECT_LT(rel_err(decode_attention_cuda(in.q, in.k, in.v, pos, which), ref), tolerance(dt))
            << "B " << B << " S " << S << " per_row " << per_row << (which == DecodeKernel::mma ? " mma" : " simt");
      }
      // The ATen path (the CPU path) agrees with the reference as closely.
      EXPECT_LT(rel_err(decode_attention_aten(in.q, in.k, in.v, pos), ref), tolerance(dt) * 2);
      // The dispatcher takes the kernel: bit-identical.
      EXPECT_TRUE(jet::ops::decode_attention(in.q, in.k, in.v, pos).equal(out));
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const auto& [dt, D, H, Hkv] = info.param;
  return std::string(dt == at::kFloat ? "f32" : "bf16") + "_D" + std::to_string(D) + "_H" + std::to_string(H) +
         "_KV" + std::to_string(Hkv);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DecodeAttentionCuda,
                         ::testing::Values(Case{at::kBFloat16, 128, 12, 2}, Case{at::kBFloat16, 64, 9, 3},
                                           Case{at::kFloat, 128, 12, 2}, Case{at::kFloat, 64, 9, 3},
                                           Case{at::kBFloat16, 128, 8, 8}, Case{at::kFloat, 64, 16, 2},
                                           Case{at::kBFloat16, 64, 10, 2}, Case{at::kFloat, 128, 7, 1},
                                           Case{at::kBFloat16, 128, 16, 1}, Case{at::kBFloat16, 64, 24, 2},
                                           Case{at::kBFloat16, 128, 6, 2}),
                         case_name);

// Captured once, replayed after the positions and the cache change in place: the graph reads them.
TEST(DecodeAttentionCudaGraph, ReplayFollowsPositionsAndCache) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (int64_t B : {2, 64}) {
      for (auto which : {DecodeKernel::simt, DecodeKernel::mma}) {
        if (which == DecodeKernel::mma && dt != at::kBFloat16) continue;
        Inputs in = make(B, 12, 2, 777, 128, dt, 40 + B);
        c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
        c10::cuda::getCurrentCUDAStream().synchronize();
        at::Tensor out;
        {
          c10::cuda::CUDAStreamGuard guard(stream);
          (void)decode_attention_cuda(in.q, in.k, in.v, in.positions, which);  // warm-up
          at::cuda::CUDAGraph graph;
          graph.capture_begin();
          out = decode_attention_cuda(in.q, in.k, in.v, in.positions, which);
          graph.capture_end();
          for (int round = 0; round < 3; ++round) {
            in.positions.copy_(at::randint(0, 777, {B}, in.positions.options()));
            in.k.normal_();
            in.q.normal_();
            graph.replay();
            stream.synchronize();
            const at::Tensor ref = decode_attention_ref(in.q, in.k, in.v, in.positions);
            EXPECT_LT(rel_err(out, ref), tolerance(dt)) << "B " << B << " round " << round;
          }
        }
      }
    }
  }
}

// The fused RoPE + cache write vs Rope::apply and a scatter in float64: the rotated q, the written
// slots (positions[b], or positions[b] % cap in a ring), and every other slot untouched; q, k, v also as
// row-strided column blocks of a packed qkv (read in place).
TEST(RopeKvWriteCuda, MatchesRopeAndScatter) {
  ASSERT_TRUE(at::hasCUDA());
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    for (auto [H, Hkv, D] : std::vector<std::array<int64_t, 3>>{{12, 2, 128}, {9, 3, 64}, {4, 2, 8}}) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool ring = variant == 1, packed = variant == 2;  // packed: q, k, v are column blocks of one qkv
        const int64_t B = 5, cap = 37;
        auto o = at::TensorOptions().dtype(dt).device(at::kCUDA);
        at::manual_seed(H * 100 + D + variant);
        at::Tensor q = at::randn({B, 1, H * D}, o), k = at::randn({B, 1, Hkv * D}, o), v = at::randn({B, 1, Hkv * D}, o);
        if (packed) {
          const at::Tensor qkv = at::randn({B, 1, (H + 2 * Hkv) * D}, o);
          q = qkv.narrow(-1, 0, H * D), k = qkv.narrow(-1, H * D, Hkv * D), v = qkv.narrow(-1, (H + Hkv) * D, Hkv * D);
        }
        at::Tensor cos = at::randn({B, 1, 1, D}, o), sin = at::randn({B, 1, 1, D}, o);
        at::Tensor pos = at::randperm(ring ? 200 : cap, at::TensorOptions().dtype(at::kLong).device(at::kCUDA)).narrow(0, 0, B);
        at::Tensor kc = at::randn({B + 1, Hkv, cap, D}, o), vc = at::randn({B + 1, Hkv, cap, D}, o);
        const at::Tensor kc0 = kc.clone(), vc0 = vc.clone();
        ASSERT_TRUE(jet::ops::rope_kv_write_cuda_supports(q, kc));
        const at::Tensor qr = jet::ops::rope_kv_write_cuda(q, k, v, cos, sin, pos, kc.narrow(0, 0, B), vc.narrow(0, 0, B), ring);
        auto d = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
        auto rope = [&](const at::Tensor& x, int64_t h) {  // x [B, 1, h*D] -> [B, h, D]
          at::Tensor xh = d(x).view({B, h, D});
          return jet::model::Rope::apply(xh, d(cos).view({B, 1, D}), d(sin).view({B, 1, D}));
        };
        const double tol = dt == at::kFloat ? 1e-6 : 2e-2;
        EXPECT_LT(rel_err(qr, rope(q, H)), tol);
        at::Tensor kref = d(kc0), vref = d(vc0);
        const at::Tensor kr = rope(k, Hkv), vr = d(v).view({B, Hkv, D});
        const at::Tensor pc = pos.cpu();
        for (int64_t b = 0; b < B; ++b) {
          const int64_t slot = ring ? pc[b].item<int64_t>() % cap : pc[b].item<int64_t>();
          kref[b].select(1, slot).copy_(kr[b]);
          vref[b].select(1, slot).copy_(vr[b]);
        }
        EXPECT_LT(rel_err(kc, kref), tol) << "variant " << variant;
        EXPECT_TRUE(d(vc).equal(vref)) << "variant " << variant;
      }
    }
  }
}

// A model with head dim 64 (the kernel's shapes) and full + sliding-window attention: the CUDA graph
// engine's logits follow the CPU engine's step by step, for prompts of different lengths, while the
// window's ring wraps several times.
TEST(DecodeAttentionCudaEngine, GraphDecodeEqualsCpu) {
  ASSERT_TRUE(at::hasCUDA());
  nlohmann::json j = {{"model_type", "jet_nemotron"}, {"architectures", {"JetNemotronForCausalLM"}},
                      {"vocab_size", 101}, {"hidden_size", 256}, {"intermediate_size", 128},
                      {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"tie_word_embeddings", true},
                      {"bos_token_id", 1}, {"eos_token_id", 2}, {"initializer_range", 0.2},
                      {"max_position_embeddings", 256}};
  j["layer_types"] = {"attn", "swa", "attn"};
  j["efficient_attention_config"] = {{"swa", {{"window_size", 7}}}};
  const auto config = jet::model::ModelConfig::from_json(j, "d64");
  ASSERT_EQ(config.head_dim, 64);
  auto gpu = std::make_unique<jet::model::CausalLM>(config), cpu = std::make_unique<jet::model::CausalLM>(config);
  const auto w = jet::model::random_weights(*cpu, 3);
  gpu->load_weights(w, at::kFloat, at::kCUDA, "d64");
  cpu->load_weights(w, at::kFloat, at::kCPU, "d64");
  jet::engine::SamplingParams greedy;
  greedy.temperature = 0;
  jet::engine::EngineOptions eo;
  eo.max_batch = 3;
  eo.max_len = 80;
  eo.cuda_graph = true;
  jet::engine::Engine on_gpu(*gpu, eo, greedy), on_cpu(*cpu, eo, greedy);
  EXPECT_TRUE(on_gpu.uses_graphs());
  for (int64_t len : {3, 17, 9}) {
    std::vector<int32_t> p;
    for (int64_t i = 0; i < len; ++i) p.push_back(static_cast<int32_t>((len * 7 + i * 13 + i * i) % 101));
    EXPECT_EQ(on_gpu.prefill(on_gpu.alloc(), p), on_cpu.prefill(on_cpu.alloc(), p));
  }
  for (int i = 0; i < 40; ++i) {
    const auto a = on_gpu.step(), b = on_cpu.step();
    const at::Tensor lg = on_gpu.last_logits().cpu(), lc = on_cpu.last_logits();
    const double err = (lg - lc).abs().max().item<double>() / lc.abs().max().item<double>();
    ASSERT_LT(err, 1e-4) << "step " << i;
    ASSERT_EQ(a, b) << "step " << i;
  }
  EXPECT_GE(on_gpu.graphs_captured(), 1);
}

}  // namespace
