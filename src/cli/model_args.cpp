// ModelArgs: --model | --config + --random-init.
#include "cli/model_args.h"

#include "core/check.h"
#include "core/device.h"
#include "model/random_init.h"

namespace jet::cli {

void ModelArgs::add_to(CLI::App& app) {
  app.add_option("--model", model, "GGUF file or HF directory");
  app.add_option("--config", config, "a config.json alone (with --random-init)");
  app.add_flag("--random-init", random_init, "random weights (official init, seeded by --seed) for --config");
}

std::string ModelDtype::name() const { return quantized ? "q" : dtype_str(scalar); }

ModelDtype parse_model_dtype(const std::string& name, at::Device device) {
  ModelDtype d;
  if (name == "auto") {
    d.quantized = device.is_cpu();
    d.scalar = device.is_cpu() ? at::kFloat : at::kBFloat16;
  } else if (name == "q") {
    JET_CHECK(device.is_cpu(), "--dtype q (quantized weights) runs on the CPU only");
    d.quantized = true;
  } else {
    d.scalar = parse_dtype(name);
  }
  return d;
}

std::unique_ptr<model::CausalLM> build_model(model::Checkpoint& ck, const ModelDtype& dtype, at::Device device) {
  auto lm = std::make_unique<model::CausalLM>(ck.config);
  lm->load_weights(ck.tensors, dtype.scalar, device, ck.path, dtype.quantized ? &ck.quantized : nullptr);
  ck.tensors.clear();
  ck.quantized.clear();
  return lm;
}

model::Checkpoint ModelArgs::checkpoint(bool tokenizer, bool quantized) const {
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
  load.quantized = quantized;
  return model::load_checkpoint(model, load);
}

std::unique_ptr<model::CausalLM> ModelArgs::build(model::Checkpoint& ck, const ModelDtype& dtype, at::Device device,
                                                  uint64_t seed) const {
  if (random_init) ck.tensors = model::random_weights(model::CausalLM(ck.config), seed, dtype.scalar);
  return build_model(ck, dtype, device);
}

void add_device_options(CLI::App& app, std::string& device, std::string& dtype) {
  app.add_option("--device", device, "cpu | cuda (default " + device + ")");
  app.add_option("--dtype", dtype, "fp32 | bf16 | q (CPU: quantized weights in place) | auto (q on the CPU, bf16 on CUDA) (default " + dtype + ")");
}

void add_engine_options(CLI::App& app, int64_t& prefill_chunk, bool& no_graph) {
  app.add_option("--prefill-chunk", prefill_chunk, "prompt tokens per prefill forward (default " + std::to_string(prefill_chunk) + ")");
  app.add_flag("--no-graph", no_graph, "decode eagerly on CUDA (no CUDA graph)");
}

}  // namespace jet::cli
