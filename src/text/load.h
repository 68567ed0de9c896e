// The tokenizer of a model path: a GGUF file (its tokenizer.ggml.* metadata), an HF directory
// (dir/tokenizer.json) or a tokenizer.json file.
#pragma once
#include <string>

#include "text/tokenizer.h"

namespace jet::text {

Tokenizer load_tokenizer(const std::string& path);

}  // namespace jet::text
