// libFuzzer entry point: parse arbitrary bytes as safetensors; a rejected input must throw jet::Error
// (and nothing else may go wrong). Accepted tensors are read end to end, so a view that points
// outside the input shows up under ASan.
#include <cstddef>
#include <cstdint>

#include "core/check.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = jet::safetensors::File::parse(data, size, "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors())
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    (void)sink;
  } catch (const jet::Error&) {
  }
  return 0;
}
