// The engine on CUDA, for the tiny Llama and the tiny hybrid (every layer type but retnet): decode steps
// replayed from CUDA graphs give the same greedy ids as the eager steps (and logits within 1e-4 of
// them), for a batch of prompts of different lengths; fp32 greedy ids on the GPU equal the CPU's;
// seeded top-k sampling inside the graph is reproducible, and top-k 1 is greedy.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <memory>

#include "../model/hybrid_model.h"
#include "../model/tiny_model.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "model/random_init.h"

namespace {

using jet::engine::GenerateOptions;

std::unique_ptr<jet::model::CausalLM> tiny(bool hybrid, at::Device device) {
  // Without retnet, whose decode needs the positions on the host (no graph).
  auto config = jet::model::ModelConfig::from_json(
      hybrid ? jet::test::hybrid_json_without("retnet") : jet::test::tiny_config_json(), "tiny");
  auto lm = std::make_unique<jet::model::CausalLM>(config);
  lm->load_weights(hybrid ? jet::model::random_weights(*lm, 11) : jet::test::random_weights(config, 11), at::kFloat,
                   device, "tiny");
  return lm;
}

std::vector<std::vector<int32_t>> prompts(int64_t vocab) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t len : {3, 17, 9}) {
    std::vector<int32_t> p;
    for (int64_t i = 0; i < len; ++i) p.push_back(static_cast<int32_t>((len * 7 + i * 13 + i * i) % vocab));
    out.push_back(p);
  }
  return out;
}

std::vector<std::vector<int32_t>> tokens(const std::vector<jet::engine::GenerateResult>& r) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& x : r) out.push_back(x.tokens);
  return out;
}

class EngineCuda : public ::testing::TestWithParam<bool> {};

TEST_P(EngineCuda, GraphEqualsEagerAndCpu) {
  ASSERT_TRUE(at::hasCUDA());
  auto gpu = tiny(GetParam(), at::kCUDA), cpu = tiny(GetParam(), at::kCPU);
  const auto ps = prompts(gpu->config().vocab_size);
  GenerateOptions g;
  g.max_new_tokens = 40;
  g.sampling.temperature = 0;
  const auto on_cpu = tokens(jet::engine::generate_batch(*cpu, ps, g));
  g.cuda_graph = false;
  const auto eager = tokens(jet::engine::generate_batch(*gpu, ps, g));
  g.cuda_graph = true;
  const auto graph = tokens(jet::engine::generate_batch(*gpu, ps, g));
  EXPECT_EQ(graph, eager);
  EXPECT_EQ(eager, on_cpu);

  // Step by step: the graph engine really replays, and its logits match the eager engine's.
  jet::engine::EngineOptions eo;
  eo.max_batch = 3;
  eo.max_len = 64;
  std::vector<std::unique_ptr<jet::engine::Engine>> engines;
  for (bool use_graph : {false, true}) {
    eo.cuda_graph = use_graph;
    engines.push_back(std::make_unique<jet::engine::Engine>(*gpu, eo, g.sampling));
    for (const auto& p : ps) engines.back()->prefill(engines.back()->alloc(), p);
  }
  EXPECT_TRUE(engines[1]->uses_graphs());
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(engines[0]->step(), engines[1]->step());
    const float diff = (engines[0]->last_logits() - engines[1]->last_logits()).abs().max().item<float>();
    EXPECT_LT(diff, 1e-4) << "step " << i;
  }
  EXPECT_GE(engines[1]->graphs_captured(), 1);
}

TEST_P(EngineCuda, SamplingInGraph) {
  ASSERT_TRUE(at::hasCUDA());
  auto gpu = tiny(GetParam(), at::kCUDA);
  const auto ps = prompts(gpu->config().vocab_size);
  GenerateOptions g;
  g.max_new_tokens = 24;
  g.sampling.temperature = 1.3;
  g.sampling.top_k = 30;
  g.sampling.top_p = 0.9;
  g.sampling.seed = 5;
  const auto a = tokens(jet::engine::generate_batch(*gpu, ps, g));
  EXPECT_EQ(tokens(jet::engine::generate_batch(*gpu, ps, g)), a);
  g.sampling.seed = 6;
  EXPECT_NE(tokens(jet::engine::generate_batch(*gpu, ps, g)), a);
  g.sampling.top_k = 1;
  const auto top1 = tokens(jet::engine::generate_batch(*gpu, ps, g));
  g.sampling.temperature = 0;
  EXPECT_EQ(top1, tokens(jet::engine::generate_batch(*gpu, ps, g)));
}

INSTANTIATE_TEST_SUITE_P(Models, EngineCuda, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Hybrid" : "Llama"; });

}  // namespace
