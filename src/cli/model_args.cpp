// ModelArgs: --model | --config + --random-init.
#include "cli/model_args.h"

#include "core/check.h"
#include "model/random_init.h"

namespace jet::cli {

void ModelArgs::add_to(CLI::App& app) {
  app.add_option("--model", model, "GGUF file or HF directory");
  app.add_option("--config", config, "a config.json alone (with --random-init)");
  app.add_flag("--random-init", random_init, "random weights (official init, seeded by --seed) for --config");
}

model::Checkpoint ModelArgs::checkpoint(bool tokenizer) const {
  JET_CHECK(!model.empty() || !config.empty(), "--model is required (or --config with --random-init)");
  JET_CHECK(model.empty() || config.empty(), "give only one of --model and --config");
  JET_CHECK(config.empty() == !random_init, "--config and --random-init go together");
  model::Checkpoint ck;
  if (random_init) {
    ck.path = config;
    ck.config = model::ModelConfig::from_file(config);
    return ck;
  }
  model::LoadOptions load;
  load.tokenizer = tokenizer;
  return model::load_checkpoint(model, load);
}

std::unique_ptr<model::CausalLM> ModelArgs::build(model::Checkpoint& ck, at::ScalarType dtype, at::Device device,
                                                  uint64_t seed) const {
  auto lm = std::make_unique<model::CausalLM>(ck.config);
  if (random_init) ck.tensors = model::random_weights(*lm, seed, dtype);
  lm->load_weights(ck.tensors, dtype, device, ck.path);
  ck.tensors.clear();
  return lm;
}

void add_device_options(CLI::App& app, std::string& device, std::string& dtype) {
  app.add_option("--device", device, "cpu | cuda (default " + device + ")");
  app.add_option("--dtype", dtype, "fp32 | bf16 (default " + dtype + ")");
}

void add_engine_options(CLI::App& app, int64_t& prefill_chunk, bool& no_graph) {
  app.add_option("--prefill-chunk", prefill_chunk, "prompt tokens per prefill forward (default " + std::to_string(prefill_chunk) + ")");
  app.add_flag("--no-graph", no_graph, "decode eagerly on CUDA (no CUDA graph)");
}

}  // namespace jet::cli
