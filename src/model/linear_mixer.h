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

class LinearMixer : public Mixer {
 public:
  // Builds the block from efficient_attention_config[type] (seeded by the layer index) and declares
  // its parameters under prefix. Parameters the block keeps in fp32 (decay, gate, norms) are marked so.
  LinearMixer(const ModelConfig& c, int64_t layer, const std::string& prefix, ParamList& params);
  at::Tensor forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) override;
  std::unique_ptr<MixerState> new_state(int64_t batch, int64_t max_len,
                                        const at::TensorOptions& opts) const override;
  int64_t cache_bytes_per_token(int64_t elem_bytes) const override { return 0; }
  int64_t cache_bytes_fixed(int64_t elem_bytes) const override;

 private:
  std::unique_ptr<LinearBlock> block_;
};

}  // namespace jet::model
