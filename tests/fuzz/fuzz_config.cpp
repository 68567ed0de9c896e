// libFuzzer entry point: arbitrary bytes as an HF config.json. Bytes that are not JSON are skipped;
// a JSON value must be accepted or rejected with jet::Error (no other exception, no crash, no huge
// allocation: the config's sizes are validated before anything is sized from them). An accepted
// config must survive to_json() -> from_json() with the same sizes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/check.h"
#include "io/hf_json.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (jet::io::json_depth(text, 65) > 64) return 0;  // as read_json_file() refuses it
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  jet::model::ModelConfig c;
  try {
    c = jet::model::ModelConfig::from_json(j, "fuzz/config.json");
  } catch (const jet::Error&) {
    return 0;
  }
  const auto back = jet::model::ModelConfig::from_json(c.to_json(), "fuzz/config.json (written back)");
  if (back.hidden_size != c.hidden_size || back.num_hidden_layers != c.num_hidden_layers ||
      back.head_dim != c.head_dim || back.vocab_size != c.vocab_size || back.rms_norm_eps != c.rms_norm_eps)
    std::abort();
  return 0;
}
