// libFuzzer entry point: parse arbitrary bytes as GGUF; a rejected input must throw jet::Error (and
// nothing else may go wrong). Small accepted tensors are also dequantised, to fuzz the block decoders.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/check.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = jet::gguf::File::parse(data, size, "fuzz.gguf");
    std::vector<float> out;
    for (const auto& t : f.tensors()) {
      if (!jet::gguf::type_supported(t.type) || t.numel() > (1 << 16)) continue;
      out.resize(t.numel());
      f.dequantize(t, out.data());
    }
    (void)f.metadata().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const jet::Error&) {
  }
  return 0;
}
