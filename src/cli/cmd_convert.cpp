// `jet convert --model X.gguf --out DIR [--force]`: an HF directory (config.json,
// generation_config.json, model.safetensors fp32, tokenizer.json, tokenizer_config.json) that HF
// transformers loads. Written to DIR.tmp.<pid>, then renamed.
#include <cstdio>

#include <fmt/format.h>

#include "cli/command.h"
#include "model/checkpoint.h"

namespace {

void setup(CLI::App& app) {
  struct Opts {
    std::string model, out;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "GGUF file (or HF directory) to convert")->required();
  app.add_option("--out", o->out, "output HF directory")->required();
  app.add_flag("--force", o->force, "replace a non-empty output directory");
  app.callback([o] {
    jet::model::check_hf_out_dir(o->out, o->force);  // before the (slow) load
    const auto ck = jet::model::load_checkpoint(o->model);
    jet::model::save_hf_dir(o->out, ck, o->force);
    fmt::print("wrote {} ({} tensors, {} model)\n", o->out, ck.tensors.size(), ck.config.model_type);
  });
}

JET_COMMAND("convert", "GGUF file -> HF directory (config, safetensors, tokenizer)", setup);

}  // namespace
