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

struct ModelArgs {
  std::string model, config;
  bool random_init = false;

  void add_to(CLI::App& app);
  // Checks the combination; loads the checkpoint (its tensors, tokenizer as asked), or the config alone.
  model::Checkpoint checkpoint(bool tokenizer = true) const;
  // The model of ck on device in dtype: ck's weights (released from ck), or random ones from seed.
  std::unique_ptr<model::CausalLM> build(model::Checkpoint& ck, at::ScalarType dtype, at::Device device,
                                         uint64_t seed) const;
};

// --device cpu|cuda and --dtype (the help names the caller's defaults).
void add_device_options(CLI::App& app, std::string& device, std::string& dtype);
// The engine's --prefill-chunk and --no-graph.
void add_engine_options(CLI::App& app, int64_t& prefill_chunk, bool& no_graph);

}  // namespace jet::cli
