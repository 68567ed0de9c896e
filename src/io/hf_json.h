// JSON files of HF model directories (config.json, generation_config.json, tokenizer_config.json):
// read with one-line errors, write atomically (temp file + rename).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace jet::io {

// A regular file of at most 64 MiB, nested at most 256 deep; else throws "<path>: <problem>".
nlohmann::json read_json_file(const std::string& path);

// The deepest nesting of arrays / objects in JSON text (strings skipped), counting up to `stop`: a
// cheap check before parsing, since every nested level becomes a value (16 MiB of '[' would build
// millions of them).
int json_depth(const std::string& text, int stop);
// Pretty-printed (indent 2), written with write_file_atomic (temp file, fsync, rename).
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace jet::io
