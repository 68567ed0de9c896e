// ATen bridge for model files: safetensors/GGUF tensors <-> at::Tensor maps (HF weight names).
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "io/gguf.h"
#include "io/safetensors.h"

namespace jet::io {

using TensorMap = std::map<std::string, at::Tensor>;

// One .safetensors file, or an HF directory (model.safetensors or model.safetensors.index.json
// shards). Tensors are copied out of the mapping, keeping their dtype.
TensorMap load_safetensors(const std::string& path);
// Atomic (temp + rename). Tensors are made contiguous on CPU first.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

at::Tensor to_tensor(const safetensors::TensorView& v);          // copy, same dtype
at::Tensor gguf_tensor(const gguf::File& f, const gguf::TensorInfo& t);  // dequantised fp32 copy

}  // namespace jet::io
