// Named parameters: every layer declares its tensors by full HF name and expected shape, and keeps a
// slot the loader fills (after checking the shape) and an optimizer can train through.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/qmatmul/qmatmul.h"

namespace jet::model {

struct Param {
  std::string name;            // e.g. "model.layers.3.mlp.up_proj.weight"
  std::vector<int64_t> shape;  // expected shape
  at::Tensor* slot;            // owned by the layer that declared it
  bool keep_fp32 = false;      // stays fp32 in a reduced-precision model (linear blocks' decay/norms)
  // A quantized model (CausalLM::load_weights with a QuantMap) keeps this weight in GGUF blocks here instead of
  // `slot` (which stays undefined); null for weights that are never quantized (norms, biases, ...).
  ops::QWeight* qslot = nullptr;
};
using ParamList = std::vector<Param>;
// Weights kept in GGUF blocks, by HF name (a GGUF checkpoint loaded with LoadOptions::quantized).
using QuantMap = std::map<std::string, ops::QWeight>;

}  // namespace jet::model
