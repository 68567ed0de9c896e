// Chunked backward of the linear-attention family for one decay per token and head (none, fixed,
// scalar) × (additive, delta): a custom autograd function around the no-grad chunked forward, and the
// sequential chunk scan both its recomputation and its state gradient run on (ATen loop; CUDA kernel
// in linear_attention_chunk_bwd.cu). Math in README.md, "Chunked backward".
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_detail.h"

namespace jet::ops::detail {

// Whether linear_attention_chunked routes a call that wants gradients through chunked_with_backward:
// decay none/fixed/scalar and the environment does not ask for the ATen autograd path
// (JET_LA_BWD=aten, read at each call).
bool chunked_backward_takes(const LinearAttentionOptions& opt);

// o and the final state of forward_fn(in, opt) (run without autograd) with the hand-derived chunked
// backward attached. One batch without cu_seqlens, T > 0.
LinearAttentionOutput chunked_with_backward(const LinearAttentionInput& in, const LinearAttentionOptions& opt,
                                            BatchFn forward_fn);

struct ChunkScanOut {
  at::Tensor zin;  // [B, H, NC, K, V]: Z as each chunk found it
  at::Tensor r;    // [B, H, NC, C, V]
  at::Tensor z;    // [B, H, K, V]: Z after the last chunk of the pass
};

// One sequential pass over the chunks (n = 0 .. NC−1, or NC−1 .. 0 when reverse), Z starting at z0:
//   zin_n = Z,  r_n = b_n + a_n Z,  Z = e_n Z + w_nᵀ r_n + a2_nᵀ b2_n
// a, w, a2: [B, H, NC, C, K]; b, b2: [B, H, NC, C, V]; e: [B, H, NC, 1, 1]; z0: [B, H, K, V]. a, w and
// (a2, b2) may be undefined (the term is left out). All one float dtype.
ChunkScanOut chunk_scan(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w, const at::Tensor& a2,
                        const at::Tensor& b2, const at::Tensor& e, const at::Tensor& z0, bool reverse);

#ifdef JET_CUDA
// Whether the kernel takes a scan with these b [B, H, NC, C, V] and z0 [B, H, K, V] (fp32 CUDA, C = 64,
// V a multiple of 16, K ∈ {32, 64, 96, 128}).
bool chunk_scan_cuda_takes(const at::Tensor& b, const at::Tensor& z0);
ChunkScanOut chunk_scan_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w, const at::Tensor& a2,
                             const at::Tensor& b2, const at::Tensor& e, const at::Tensor& z0, bool reverse);
#endif

}  // namespace jet::ops::detail
