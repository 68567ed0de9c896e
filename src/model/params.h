// Named parameters: every layer declares its tensors by full HF name and expected shape, and keeps a
// slot the loader fills (after checking the shape) and an optimizer can train through.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace jet::model {

struct Param {
  std::string name;            // e.g. "model.layers.3.mlp.up_proj.weight"
  std::vector<int64_t> shape;  // expected shape
  at::Tensor* slot;            // owned by the layer that declared it
  bool keep_fp32 = false;      // stays fp32 in a reduced-precision model (linear blocks' decay/norms)
};
using ParamList = std::vector<Param>;

}  // namespace jet::model
