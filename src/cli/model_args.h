// The model options that generate and bench share: --model PATH (a checkpoint), or --config FILE
// --random-init (the official random initialisation, seeded) to measure any config without weights.
#pragma once
#include <CLI/CLI.hpp>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/causal_lm.h"
#include "model/checkpoint.h"

namespace jet::cli {

// --dtype: fp32 | bf16 (every weight in that dtype) | q (CPU: the GGUF's quantized weights kept in their
// blocks, float Linear weights quantized to Q8_0 on load, fp32 activations; ops/qmatmul) | auto (q on the CPU,
// bf16 on CUDA: the fastest of each).
struct ModelDtype {
  at::ScalarType scalar = at::kFloat;  // activations (and unquantized weights)
  bool quantized = false;
  std::string name() const;  // "q", "fp32", "bf16"
};
ModelDtype parse_model_dtype(const std::string& name, at::Device device);

struct ModelArgs {
  std::string model, config;
  bool random_init = false;

  void add_to(CLI::App& app);
  // Checks the combination; loads the checkpoint (its tensors, tokenizer as asked), or the config alone.
  // quantized: GGUF weights stay in their blocks (LoadOptions::quantized).
  model::Checkpoint checkpoint(bool tokenizer = true, bool quantized = false) const;
  // The model of ck on device in dtype: ck's weights (released from ck), or random ones from seed.
  std::unique_ptr<model::CausalLM> build(model::Checkpoint& ck, const ModelDtype& dtype, at::Device device,
                                         uint64_t seed) const;
};

// The checkpoint's model on device in dtype (its tensors released from ck).
std::unique_ptr<model::CausalLM> build_model(model::Checkpoint& ck, const ModelDtype& dtype, at::Device device);
// --device cpu|cuda and --dtype (the help names the caller's defaults).
void add_device_options(CLI::App& app, std::string& device, std::string& dtype);
// The engine's --prefill-chunk and --no-graph.
void add_engine_options(CLI::App& app, int64_t& prefill_chunk, bool& no_graph);

}  // namespace jet::cli
