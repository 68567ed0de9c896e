// JSON file helpers for HF model directories.
#include "io/hf_json.h"

#include <algorithm>

#include "core/check.h"
#include "core/fs.h"

namespace jet::io {

nlohmann::json read_json_file(const std::string& path) {
  // A model directory's JSON files are small: a regular file of at most 64 MiB (not a FIFO, not /dev/zero).
  const std::string text = read_regular_file(path, int64_t(64) << 20, "a model's JSON file is never this large");
  JET_CHECK(json_depth(text, 257) <= 256, "{}: JSON nested deeper than 256 levels", path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: malformed JSON ({})", path, e.what());
  }
}

int json_depth(const std::string& text, int stop) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char ch : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (ch == '\\')
        escaped = true;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest >= stop) break;
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return deepest;
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace jet::io
