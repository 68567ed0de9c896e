// Device and dtype names of the CLI (--device cpu|cuda, --dtype fp32|bf16) parsed into ATen values,
// with one-line errors for unknown names and unavailable devices.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace jet {

// "cpu", "cuda" or "cuda:N". Throws "unknown device 'tpu' (expected cpu or cuda)" and, for cuda
// without a usable GPU, "device 'cuda' requested but no CUDA device is available".
c10::Device parse_device(const std::string& name);
// "fp32" | "bf16" (also "float32", "bfloat16", "fp16"/"float16").
c10::ScalarType parse_dtype(const std::string& name);
// Inverse of parse_dtype for the types it accepts ("fp32", "bf16", "fp16").
std::string dtype_str(c10::ScalarType t);

}  // namespace jet
