// JSON file helpers for HF model directories.
#include "io/hf_json.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/check.h"

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
  const std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  {
    std::ofstream out(tmp);
    JET_CHECK(out, "{}: cannot create ({})", tmp, std::strerror(errno));
    out << j.dump(2) << "\n";
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      JET_FAIL("{}: write failed", path);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    JET_FAIL("{}: rename failed ({})", path, std::strerror(err));
  }
}

}  // namespace jet::io
