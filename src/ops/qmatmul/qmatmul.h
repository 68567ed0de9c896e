// Matrix products with GGUF-quantized weights kept in their blocks (CPU): y = x · Wᵀ (+ bias), x fp32.
//
// A QWeight is a [rows, cols] matrix whose every row is block_cols() / block_elems GGUF blocks of one type, byte
// for byte as in the file (io/gguf.h has the layouts); block_cols() rounds cols up to the block (a GGUF weight's
// cols always are a multiple; a Q8_0 weight quantized here from a float one of another width has its last block
// padded with zeros, and x's columns past cols count as zeros). Three ways to multiply, picked per call:
//   * int8 (the decode path, M = rows of x below kQMatmulGemmRows): each row of x is quantized once per call to
//     8-bit blocks of 32 (scale = max|x| / 127, and the scaled sum of every 16 values), and every 64 weight values
//     are unpacked to unsigned bytes u with a scale and an offset per 16 (w = scale·u + offset) and multiplied
//     with integer dot products (AVX-512 VNNI, or AVX2's vpmaddubsw; ops/cpu/isa.h picks): Σ w·x = Σ_16 scale·dx·Σ
//     u·q + offset·dx·Σ q. Weights are read
//     once per call, 4.5 bits per value for Q4_1: the point of the format on a memory-bound decode step.
//   * bf16 GEMM (M >= kQMatmulGemmRows: prefill, evaluation): the weight is dequantized to a bf16 scratch matrix
//     and multiplied by ATen's bf16 GEMM (x rounded to bf16): the dequantization is amortised over M rows and the
//     GEMM runs on the CPU's bf16 dot-product units.
//   * fallback (neither AVX2 nor AVX-512 VNNI, or JET_CPU_ISA=portable): dequantize to fp32, ATen sgemm.
// Accuracy against the float64 product of the dequantized weight (qmatmul_ref): int8 path |error| <= Σ_k |w_k|
// · dx_k / 2 (x's rounding to its 8-bit blocks) plus fp32 rounding; bf16 path ~2⁻⁸ relative per product.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "io/gguf.h"

namespace jet::ops {

struct QWeight {
  gguf::Type type = gguf::Type::F32;
  int64_t rows = 0, cols = 0;
  at::Tensor data;  // uint8 [rows, row_bytes()], contiguous, CPU

  bool defined() const { return data.defined(); }
  int64_t block_cols() const;  // cols rounded up to the block
  int64_t row_bytes() const;
  int64_t nbytes() const { return rows * row_bytes(); }
};

// The types qmatmul multiplies in place: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K.
bool qmatmul_supports(gguf::Type t);
// A QWeight holding a copy of rows · cols values' blocks at src (cols a multiple of the block size).
QWeight qweight_from_blocks(gguf::Type t, int64_t rows, int64_t cols, const uint8_t* src);
// w [N, K] (any float dtype, K >= 1) quantized to Q8_0 (per 32: d = max|w| / 127, round(w / d)); a last block of
// fewer than 32 values is padded with zeros.
QWeight quantize_q8_0(const at::Tensor& w);
// Rows of a weight (a view when idx is a contiguous range, else a copy) and the rows of several stacked
// into one new buffer.
QWeight qweight_rows(const QWeight& w, const at::Tensor& idx);
// fp32 [rows, cols] (on the calling threads, split across ATen's pool).
at::Tensor dequantize(const QWeight& w);
// Row `row` of w into out[cols] (fp32).
void dequantize_row(const QWeight& w, int64_t row, float* out);

enum class QKernel { automatic, int8, gemm, fallback };
constexpr int64_t kQMatmulGemmRows = 32;
// The int8 kernel runs here (cpu::isa() is avx2 or avx512).
bool qmatmul_int8_available();
// "avx512-vnni", "avx2" or "fallback": what automatic picks for M < kQMatmulGemmRows here.
std::string qmatmul_kernel_name();

// x [..., K] fp32 (contiguous rows), K == w.cols -> y [..., N] fp32; bias [N] fp32 or undefined.
// `which` forces a path (tests); int8 fails where it does not exist.
at::Tensor qmatmul(const at::Tensor& x, const QWeight& w, const at::Tensor& bias = {},
                   QKernel which = QKernel::automatic);
// The same on raw rows: x [M, K] with row stride ldx, y [M, N] with row stride ldy (no allocation on the
// int8 path beyond a per-thread scratch that grows once).
void qmatmul_out(const float* x, int64_t M, int64_t ldx, const QWeight& w, float* y, int64_t ldy,
                 QKernel which = QKernel::automatic);
// y [M, Σ rows] = x · several weights that read the same x (one type and width, cols == K), each into its column
// block: one int8 pass over all their rows when their blocks are consecutive in memory (qweights_consecutive), else
// one call per weight. No allocation, no ATen call on the int8 path.
void qmatmul_out(const float* x, int64_t M, int64_t ldx, at::ArrayRef<const QWeight*> ws, float* y, int64_t ldy);
// The weights' blocks follow each other in memory (one type and width): what packs them for one pass.
bool qweights_consecutive(at::ArrayRef<const QWeight*> ws);
// Float64 reference: the dequantized weight times x in double (tests). Returns fp64 [..., N].
at::Tensor qmatmul_ref(const at::Tensor& x, const QWeight& w, const at::Tensor& bias = {});

}  // namespace jet::ops
