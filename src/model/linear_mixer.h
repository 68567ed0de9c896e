// The linear-attention mixers ("jet", "gdn", "deltanet", "gla", "retnet", "mamba2"): an adapter from
// the blocks of src/model/blocks (chunked forward + recurrent step, fixed-size state) to Mixer.
#pragma once
#include <memory>

#include "model/blocks/block.h"
#include "model/mixer.h"

namespace jet::model {

struct LinearState : MixerState {
  BlockState block;    // S [B, H, K, V] fp32 + conv tails
  int64_t length = 0;  // tokens consumed
};

// jet, gdn, deltanet, gla, retnet, mamba2: the layer types a LinearMixer implements.
bool is_linear_type(const std::string& type);

// The block of layer `layer` (a linear layer type) from config.efficient_attention_config, initialised
// as the reference layer's constructor does from `seed`, its Linear weights N(0, init_std) (negative:
// config.initializer_range; 0: zeros, not drawn).
std::unique_ptr<LinearBlock> make_layer_block(const ModelConfig& c, int64_t layer, uint64_t seed,
                                              double init_std = -1);

class LinearMixer : public Mixer {
 public:
  // Builds the block from efficient_attention_config[type] (tensors allocated, not drawn) and declares
  // its parameters under prefix (LinearBlock::declare: the block's tensors are the model's slots).
  LinearMixer(const ModelConfig& c, int64_t layer, const std::string& prefix, ParamList& params);
  at::Tensor forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) override;
  // The engine's row interface (linear_mixer_rows.cpp).
  at::Tensor forward_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state,
                          int64_t row) override;
  at::Tensor decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) override;
  // The block's step_cpu on rows [0, B) of the state (JetBlock, Gated DeltaNet; the others run decode_rows).
  bool decode_rows_cpu(const float* x, const CpuStep& step, MixerState& state, float* out) override;
  bool decode_needs_host() const override;
  std::unique_ptr<MixerState> new_state(int64_t batch, int64_t max_len,
                                        const at::TensorOptions& opts) const override;
  int64_t cache_bytes_per_token(int64_t elem_bytes) const override { return 0; }
  int64_t cache_bytes_fixed(int64_t elem_bytes) const override;

 private:
  std::unique_ptr<LinearBlock> block_;
};

}  // namespace jet::model
