// `jet block` (dev): one linear mixer block (jet, gdn, deltanet, gla, retnet, mamba2) on given weights and
// input, for layer-level parity tests against the reference implementations. The first --prefill tokens
// go through forward() with a state (the chunked path), every later token through step() (decode).
//   --config   the block's efficient_attention_config entry: a JSON object, or a file holding one
//   --weights  safetensors with exactly the block's parameters, official names relative to the layer
//   --input    safetensors with "x" [B, T, D]
//   --out      safetensors with y [B, T, D], state [B, H, K, V] and conv0.. (the conv tails), all fp32
#include <ATen/ATen.h>

#include <set>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/json_arg.h"
#include "core/check.h"
#include "core/device.h"
#include "core/shape.h"
#include "io/tensors.h"
#include "model/blocks/blocks.h"

namespace {

nlohmann::json parse_config(const std::string& arg) {
  nlohmann::json j = jet::cli::json_arg(arg, "--config", "a JSON object");
  // The official configs write norm_eps as a string ("1e-5"), as ModelConfig accepts too.
  if (j.is_object() && j.contains("norm_eps") && j["norm_eps"].is_string()) {
    const std::string v = j["norm_eps"].get<std::string>();
    size_t used = 0;
    double eps = 0;
    try {
      eps = std::stod(v, &used);
    } catch (const std::exception&) {
    }
    JET_CHECK(used == v.size() && used > 0, "--config: norm_eps '{}' is not a number", v);
    j["norm_eps"] = eps;
  }
  return j;
}

void setup(CLI::App& app) {
  struct Opts {
    std::string type = "jet", config, weights, input, out, device = "cpu", dtype = "fp32";
    int64_t prefill = -1;
  };
  auto o = std::make_shared<Opts>();
  app.group("");  // a dev tool: hidden from `jet --help`
  app.add_option("--type", o->type, "block type: jet | gdn | deltanet | gla | retnet | mamba2");
  app.add_option("--config", o->config, "efficient_attention_config entry (JSON or file)")->required();
  app.add_option("--weights", o->weights, "safetensors with the block's parameters")->required();
  app.add_option("--input", o->input, "safetensors with x [B, T, D]")->required();
  app.add_option("--out", o->out, "output safetensors (y, state, conv0..)")->required();
  app.add_option("--prefill", o->prefill, "tokens through forward(); the rest one step at a time (default: all)");
  app.add_option("--device", o->device, "cpu | cuda");
  app.add_option("--dtype", o->dtype, "fp32 | bf16");
  app.callback([o] {
    const auto device = jet::parse_device(o->device);
    const auto dtype = jet::parse_dtype(o->dtype);
    const jet::io::TensorMap in = jet::io::load_safetensors(o->input);
    JET_CHECK(in.count("x") && in.at("x").dim() == 3 && in.at("x").size(1) > 0, "{}: needs a tensor 'x' [B, T, D] with T ≥ 1", o->input);
    const at::Tensor x = in.at("x").to(device, dtype);
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
    const int64_t prefill = o->prefill < 0 ? T : o->prefill;
    JET_CHECK(prefill <= T, "--prefill {} is more than the {} tokens of x", prefill, T);

    auto block = jet::model::make_block(o->type, parse_config(o->config), D, 0.02, jet::model::kUninitialised);
    const jet::io::TensorMap w = jet::io::load_safetensors(o->weights);
    std::set<std::string> names;
    for (auto& [name, t] : block->parameters()) {
      JET_CHECK(w.count(name), "{}: missing weight '{}'", o->weights, name);
      block->set(name, w.at(name).to(at::kFloat));
      names.insert(name);
    }
    for (const auto& [name, t] : w) JET_CHECK(names.count(name), "{}: unexpected weight '{}'", o->weights, name);
    block->to(device, dtype);

    at::InferenceMode guard;
    jet::model::BlockState state = block->init_state(B);
    std::vector<at::Tensor> ys;
    if (prefill > 0) ys.push_back(block->forward(x.narrow(1, 0, prefill), &state));
    for (int64_t t = prefill; t < T; ++t) ys.push_back(block->step(x.select(1, t), state).unsqueeze(1));
    jet::io::TensorMap out{{"y", at::cat(ys, 1).to(at::kFloat)}};
    if (state.S.defined()) out["state"] = state.S.to(at::kFloat);
    for (size_t i = 0; i < state.conv.size(); ++i) out["conv" + std::to_string(i)] = state.conv[i].to(at::kFloat);
    jet::io::save_safetensors(o->out, out);
  });
}

JET_COMMAND("block", "(dev) run one mixer block on given weights and input, for parity tests", setup);

}  // namespace
