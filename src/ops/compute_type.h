// The type the reference (ATen) paths of the ops compute in: float64 for float64 inputs (the oracle), else fp32.
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

inline at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace jet::ops
