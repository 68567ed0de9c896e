// Parsing of --device / --dtype values.
#include "core/device.h"

#include <ATen/Context.h>

#include "core/check.h"

namespace jet {

c10::Device parse_device(const std::string& name) {
  const bool cuda = name == "cuda" || name.rfind("cuda:", 0) == 0;
  JET_CHECK(name == "cpu" || cuda, "unknown device '{}' (expected cpu or cuda)", name);
  if (!cuda) return c10::Device(c10::kCPU);
  JET_CHECK(at::hasCUDA(), "device '{}' requested but no CUDA device is available", name);
  c10::DeviceIndex index = 0;
  if (name.size() > 5) {
    try {
      size_t used = 0;
      index = static_cast<c10::DeviceIndex>(std::stoi(name.substr(5), &used));
      JET_CHECK(used == name.size() - 5 && index >= 0, "unknown device '{}'", name);
    } catch (const std::logic_error&) {
      JET_FAIL("unknown device '{}' (expected cpu, cuda or cuda:N)", name);
    }
  }
  return c10::Device(c10::kCUDA, index);
}

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return c10::kFloat;
  if (name == "bf16" || name == "bfloat16") return c10::kBFloat16;
  if (name == "fp16" || name == "float16") return c10::kHalf;
  JET_FAIL("unknown dtype '{}' (expected fp32 or bf16)", name);
}

std::string dtype_str(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "fp32";
    case c10::kBFloat16: return "bf16";
    case c10::kHalf: return "fp16";
    default: return c10::toString(t);
  }
}

}  // namespace jet
