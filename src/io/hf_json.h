// JSON files of HF model directories (config.json, generation_config.json, tokenizer_config.json):
// read with one-line errors, write atomically (temp file + rename).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace jet::io {

// Throws "<path>: cannot open" / "<path>: malformed JSON (...)".
nlohmann::json read_json_file(const std::string& path);
// Pretty-printed (indent 2), written with write_file_atomic (temp file, fsync, rename).
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace jet::io
