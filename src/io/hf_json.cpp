// JSON file helpers for HF model directories.
#include "io/hf_json.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/check.h"
#include "core/fs.h"

namespace jet::io {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  JET_CHECK(in, "{}: cannot open ({})", path, std::strerror(errno));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: malformed JSON ({})", path, e.what());
  }
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace jet::io
