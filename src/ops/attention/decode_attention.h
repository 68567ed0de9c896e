// One-token (decode) attention over a KV cache, with grouped KV heads (GQA) and a visible length per
// sequence: the attention half of the engine's decode step (model/attention.cpp, decode_rows).
//
//   q [B, H, D];  k, v [B, Hkv, S, D] (views into a larger cache are fine: any strides, last dim
//   contiguous);  positions [B] int64 or undefined.
//   Row b's query head h attends to KV head h / (H / Hkv) over the slots j < S with j <= positions[b]
//   (every slot when positions is undefined):  out[b, h] = softmax_j(q·k_j / sqrt(D)) · v_j.
//   Returns [B, H, D] in q's dtype. S and the shapes are all the host needs (no sync: graph-capturable).
#pragma once
#include <ATen/core/Tensor.h>

namespace jet::ops {

// The dispatcher: the CUDA split-K kernel when the tensors are on CUDA and the shapes are supported
// (decode_attention_cuda_supports), else decode_attention_aten.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& positions);

// ATen path (the CPU path, and CUDA's fallback): grouped matmuls, fp32 softmax.
at::Tensor decode_attention_aten(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& positions);

// Fails with a one-line reason unless q, k, v, positions have the shapes above.
void check_decode_attention_shapes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& positions);

// Float64 reference with plain loops on the CPU (tests). Returns fp64 [B, H, D].
at::Tensor decode_attention_ref(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& positions);

// CUDA fast path (decode_attention.cu, JET_CUDA builds): D in {64, 128}, any cache strides with a contiguous
// last dim. Split-K ("flash decoding"): each block reads one KV head's slice of keys once for all its query
// heads, keeps an online softmax in fp32, and a combine pass merges the slices. Two kernels:
//   simt: bf16 or fp32, H / Hkv <= 8, dot products on CUDA cores;
//   mma:  bf16, H / Hkv <= 16, QKᵀ and PV on tensor cores (the group's query heads as a 16-row tile).
// automatic takes mma for bf16 with H / Hkv >= 2 (or > 8), else simt.
enum class DecodeKernel { automatic, simt, mma };
bool decode_attention_cuda_supports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    DecodeKernel which = DecodeKernel::automatic);
at::Tensor decode_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& positions, DecodeKernel which = DecodeKernel::automatic);

// The rest of the attention decode step before decode_attention, fused into one CUDA kernel (it would
// be a dozen small launches): RoPE on q and k, and the new k, v written into the cache.
//   q [B, (1,) H*D], k and v [B, (1,) Hkv*D] (the projections' rows: contiguous, or column blocks of a packed qkv); cos, sin [B, D] (Rope::cos_sin);
//   k_cache, v_cache [>= B, Hkv, cap, D] (last dim contiguous). Row b's k, v go to slot positions[b]
//   (positions[b] % cap when ring). Returns the rotated q [B, H, D]. Same dtype everywhere, any even D.
//   Equals Rope::apply + scatter_ (model/attention.cpp) up to rounding (fp32 math, one rounding).
bool rope_kv_write_cuda_supports(const at::Tensor& q, const at::Tensor& k_cache);
at::Tensor rope_kv_write_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cos,
                              const at::Tensor& sin, const at::Tensor& positions, const at::Tensor& k_cache,
                              const at::Tensor& v_cache, bool ring);

}  // namespace jet::ops
