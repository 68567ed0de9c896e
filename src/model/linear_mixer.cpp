// LinearMixer: prefill through the block's chunked forward, one-token decode through its step.
#include "model/linear_mixer.h"

#include <ATen/ATen.h>

#include "core/check.h"
#include "model/blocks/blocks.h"

namespace jet::model {

bool is_linear_type(const std::string& t) {
  return t == "jet" || t == "gdn" || t == "deltanet" || t == "gla" || t == "retnet" || t == "mamba2";
}

std::unique_ptr<LinearBlock> make_layer_block(const ModelConfig& c, int64_t layer, uint64_t seed, double init_std) {
  const std::string& type = c.layer_types.at(layer);
  // to_json() gives the sub-config with numbers as numbers (the official file has norm_eps "1e-5").
  const nlohmann::json j = c.to_json();
  const auto& eac = j.value("efficient_attention_config", nlohmann::json::object());
  JET_CHECK(eac.contains(type), "layer {}: layer type '{}' needs efficient_attention_config.{}", layer, type,
            type);
  return make_block(type, eac[type], c.hidden_size, init_std < 0 ? j.value("initializer_range", 0.02) : init_std,
                    seed);
}

LinearMixer::LinearMixer(const ModelConfig& c, int64_t layer, const std::string& prefix, ParamList& params)
    : block_(make_layer_block(c, layer, kUninitialised)) {
  block_->declare(params, prefix);
}

at::Tensor LinearMixer::forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) {
  if (!state) return block_->forward(x);
  auto& s = static_cast<LinearState&>(*state);
  JET_CHECK(ctx.start_pos == s.length, "linear state holds {} tokens and can only continue there, not at {}",
            s.length, ctx.start_pos);
  s.length += x.size(1);
  if (x.size(1) == 1) return block_->step(x.select(1, 0), s.block).unsqueeze(1);
  return block_->forward(x, &s.block);
}

std::unique_ptr<MixerState> LinearMixer::new_state(int64_t batch, int64_t max_len,
                                                   const at::TensorOptions& opts) const {
  auto s = std::make_unique<LinearState>();
  s->block = block_->init_state(batch);
  return s;
}

int64_t LinearMixer::cache_bytes_fixed(int64_t elem_bytes) const {
  const BlockState s = block_->init_state(1);
  int64_t n = s.S.numel() * 4;  // the state stays fp32
  for (const auto& t : s.conv) n += t.numel() * elem_bytes;
  return n;
}

}  // namespace jet::model
