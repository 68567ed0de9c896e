// `jet logits` (dev): fp32 logits [T, V] of a token sequence, written to a safetensors file, for the
// parity tests against HF transformers. --decode-from N prefills N tokens, then feeds the rest one
// token at a time through the cache (the logits must equal the full forward).
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/json_arg.h"
#include "core/check.h"
#include "core/device.h"
#include "io/tensors.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"

namespace {

std::vector<int64_t> parse_ids(const std::string& arg) {
  const nlohmann::json j = jet::cli::json_arg(arg, "--ids", "a JSON list of token ids");
  JET_CHECK(j.is_array() && !j.empty(), "--ids: expected a non-empty JSON list of token ids");
  std::vector<int64_t> ids;
  for (const auto& v : j) {
    JET_CHECK(v.is_number_integer(), "--ids: entry {} is not an integer", v.dump());
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

void setup(CLI::App& app) {
  struct Opts {
    std::string model, ids, out, device = "cpu", dtype = "fp32";
    int64_t decode_from = -1;
  };
  auto o = std::make_shared<Opts>();
  app.group("");  // a dev tool: hidden from `jet --help`
  app.add_option("--model", o->model, "GGUF file or HF directory")->required();
  app.add_option("--ids", o->ids, "JSON list of token ids, or a file holding one")->required();
  app.add_option("--out", o->out, "output .safetensors (tensor 'logits' [T, V] fp32)")->required();
  app.add_option("--device", o->device, "cpu | cuda");
  app.add_option("--dtype", o->dtype, "fp32 | bf16");
  app.add_option("--decode-from", o->decode_from,
                 "prefill this many tokens, then decode the rest one by one through the cache");
  app.callback([o] {
    const auto device = jet::parse_device(o->device);
    const auto dtype = jet::parse_dtype(o->dtype);
    const std::vector<int64_t> ids = parse_ids(o->ids);
    const int64_t T = static_cast<int64_t>(ids.size());
    JET_CHECK(o->decode_from < T, "--decode-from {} must be below the {} ids", o->decode_from, T);
    jet::model::LoadOptions load;
    load.tokenizer = false;
    auto ck = jet::model::load_checkpoint(o->model, load);
    jet::model::CausalLM lm(ck.config);
    lm.load_weights(ck.tensors, dtype, device, o->model);
    ck.tensors.clear();
    at::InferenceMode guard;
    at::Tensor x = at::tensor(ids, at::kLong).unsqueeze(0);  // [1, T]
    at::Tensor logits;
    if (o->decode_from < 0) {
      logits = lm.forward(x)[0];
    } else {
      const int64_t n = std::max<int64_t>(o->decode_from, 1);
      auto cache = lm.new_cache(1, T);
      std::vector<at::Tensor> parts{lm.forward(x.narrow(1, 0, n), 0, &cache)[0]};
      for (int64_t t = n; t < T; ++t) parts.push_back(lm.forward(x.narrow(1, t, 1), t, &cache)[0]);
      logits = at::cat(parts, 0);
    }
    jet::io::save_safetensors(o->out, {{"logits", logits.to(at::kFloat)}});
  });
}

JET_COMMAND("logits", "(dev) fp32 logits of token ids, for parity tests", setup);

}  // namespace
