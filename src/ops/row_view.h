// A tensor seen as rows × cols: its last dim contiguous and its leading dims collapsing into one row index
// with a uniform stride (a contiguous tensor, or a column block of one, like the q part of a packed qkv).
// Kernels that take such views skip the copy that .contiguous() would make.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace jet::ops {

// The element stride between consecutive rows, or -1 when t is not such a view.
inline int64_t uniform_row_stride(const at::Tensor& t) {
  if (t.dim() == 0 || (t.stride(-1) != 1 && t.size(-1) > 1)) return -1;
  int64_t rs = -1, span = 1;  // stride of the innermost leading dim of size > 1, rows collapsed so far
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (rs < 0) {
      rs = t.stride(d);
      span = t.size(d);
    } else {
      if (t.stride(d) != rs * span) return -1;
      span *= t.size(d);
    }
  }
  return rs < 0 ? t.size(-1) : rs;
}

}  // namespace jet::ops
