#include "text/load.h"

#include <sys/stat.h>

#include "core/check.h"
#include "core/strings.h"
#include "io/gguf.h"

namespace jet::text {

Tokenizer load_tokenizer(const std::string& path) {
  struct stat st {};
  JET_CHECK(stat(path.c_str(), &st) == 0, "{}: no such file or directory", path);
  if (S_ISDIR(st.st_mode)) {
    const std::string f = path + "/tokenizer.json";
    JET_CHECK(stat(f.c_str(), &st) == 0, "{}: missing tokenizer.json", path);
    return Tokenizer::from_json_file(f);
  }
  if (ends_with(path, ".gguf")) return Tokenizer::from_gguf(gguf::File::open(path));
  return Tokenizer::from_json_file(path);
}

}  // namespace jet::text
