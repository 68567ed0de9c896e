// The one table from layer type to mixer implementation.
#include "model/mixer.h"

#include "core/check.h"
#include "model/attention.h"
#include "model/linear_mixer.h"

namespace jet::model {

std::unique_ptr<Mixer> make_mixer(const ModelConfig& c, int64_t layer, ParamList& params) {
  const std::string& type = c.layer_types.at(layer);
  const std::string prefix = fmt::format("model.layers.{}.self_attn.", layer);
  if (type == "attn") return std::make_unique<Attention>(c, prefix, params);
  if (type == "swa") return std::make_unique<Attention>(c, prefix, params, c.swa->window_size);
  if (is_linear_type(type)) return std::make_unique<LinearMixer>(c, layer, prefix, params);
  JET_FAIL("layer {}: layer type '{}' is not implemented yet (supported: attn, swa, jet, gdn, "
           "deltanet, gla, retnet, mamba2)", layer, type);
}

}  // namespace jet::model
