// The official random initialisation of a model, for measuring speed (and training) without weights:
// JetNemotronPreTrainedModel._init_weights applied after each module's constructor, i.e. nn.Linear and
// nn.Embedding weights ~ N(0, initializer_range), Linear biases 0, RMSNorm weights 1, and the linear
// blocks' other parameters (A_log, dt_bias, D, short convs) as their layer's constructor sets them.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "io/tensors.h"

namespace jet::model {

class CausalLM;

// One tensor per declared parameter of lm (HF names), deterministic in `seed` whatever the device the
// model later runs on (drawn on the CPU). Stored in dtype, except parameters the model keeps in fp32.
io::TensorMap random_weights(const CausalLM& lm, uint64_t seed, at::ScalarType dtype = at::kFloat);

}  // namespace jet::model
