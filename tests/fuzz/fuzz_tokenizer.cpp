// libFuzzer entry point: arbitrary bytes as an HF tokenizer directory. The input up to the first NUL
// byte is tokenizer.json, the rest (if any) tokenizer_config.json; both are written to a temp
// directory and loaded with Tokenizer::from_json_file. Rejection must be a jet::Error; an accepted
// tokenizer must encode, decode and (with a chat template) render text without failing otherwise.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/check.h"
#include "text/tokenizer.h"

namespace {

std::string dir() {
  static const std::string d = [] {
    char tmpl[] = "/tmp/jet-fuzz-tok.XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    return std::string(tmpl);
  }();
  return d;
}

void put(const std::string& path, const char* p, size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(p, 1, n, f) != n || std::fclose(f) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  const void* nul = std::memchr(p, 0, size);
  const size_t n = nul ? static_cast<const char*>(nul) - p : size;
  const std::string json = dir() + "/tokenizer.json", config = dir() + "/tokenizer_config.json";
  put(json, p, n);
  if (nul)
    put(config, p + n + 1, size - n - 1);
  else
    std::remove(config.c_str());
  try {
    const auto tok = jet::text::Tokenizer::from_json_file(json);
    const std::string text = "Hello wörld 123, \xff\xfe ok <|im_end|>\n\tthe end";
    const auto ids = tok.encode(text, /*add_special_tokens=*/true);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();
    (void)tok.decode(ids, /*skip_special_tokens=*/true);
    if (tok.has_chat_template()) {
      try {
        (void)tok.apply_chat_template({{"system", "be brief"}, {"user", "hi"}}, true);
      } catch (const jet::Error&) {  // a template jet does not recognise
      }
    }
  } catch (const jet::Error&) {
  }
  return 0;
}
