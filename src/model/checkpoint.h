// Model checkpoints: an HF directory (config.json + safetensors + tokenizer.json) or a GGUF file
// (config from metadata, tensors dequantised and renamed to HF names, llama Q/K rows un-permuted).
// save_hf_dir() writes the HF directory that `jet convert` and later exports produce.
#pragma once
#include <memory>
#include <string>

#include "io/tensors.h"
#include "model/config.h"
#include "model/params.h"

namespace jet::text {
class Tokenizer;
}

namespace jet::model {

struct Checkpoint {
  std::string path;
  ModelConfig config;
  io::TensorMap tensors;                       // HF names; fp32 for GGUF, file dtype for safetensors
  QuantMap quantized;                          // GGUF weights kept in their blocks (LoadOptions::quantized)
  std::shared_ptr<text::Tokenizer> tokenizer;  // null when not asked for or (HF dir) not present
};

struct LoadOptions {
  bool weights = true;
  bool tokenizer = true;
  // GGUF: 2-D weights of a type ops::qmatmul multiplies stay in their blocks (Checkpoint::quantized), the
  // others are dequantized into `tensors`. HF directories: no effect (load_weights quantizes those to Q8_0).
  bool quantized = false;
};

// path: an HF directory or a .gguf file. Errors name the path and the problem in one line.
Checkpoint load_checkpoint(const std::string& path, const LoadOptions& opts = {});
// GGUF half of load_checkpoint (checkpoint_gguf.cpp).
Checkpoint load_gguf_checkpoint(const std::string& path, const LoadOptions& opts);

// Writes config.json, generation_config.json, model.safetensors and (with a tokenizer)
// tokenizer.json + tokenizer_config.json into dir.tmp.<pid>, then renames it to dir. An existing
// non-empty dir is an error unless force (then it is replaced).
void save_hf_dir(const std::string& dir, const Checkpoint& ckpt, bool force);
// The check save_hf_dir() starts with, for callers that want to fail before loading a model.
void check_hf_out_dir(const std::string& dir, bool force);

}  // namespace jet::model
