// Internal interface between ops/qmatmul/qmatmul.cpp (dispatch, threads, ATen) and the SIMD translation units
// qmatmul_avx512.cpp (AVX-512 VNNI) and qmatmul_avx2.cpp (AVX2), each called only when cpu::isa() picks it. Plain
// C++ only.
//
// Quantized activations ("Q8 rows"): K is padded to a multiple of 64 (chunks of 64 values, zeros past K). Row r
// of M occupies act_row_bytes(K) bytes at act + r * act_row_bytes(K):
//   int8  q[chunks * 64]     round(x / d) per 32-block, d = max|x| / 127 (0 for an all-zero block)
//   float dl[chunks * 16]    d of each int32 lane of a 64-value chunk (lanes 0-7: first block, 8-15: second)
//   float s16[chunks * 4]    d · Σ q over each 16 values
#pragma once
#include <cstdint>

#include "io/gguf.h"

namespace jet::ops::qk {

inline int64_t act_chunks(int64_t K) { return (K + 63) / 64; }
inline int64_t act_row_bytes(int64_t K) { return act_chunks(K) * (64 + 16 * 4 + 4 * 4); }

// x [M, K] (row stride ldx, any K >= 1) -> Q8 rows at act (values past K are zeros: the layout of K rounded up to 32).
// Both bodies give the same bytes.
void quantize_rows_avx512(const float* x, int64_t M, int64_t ldx, int64_t K, uint8_t* act);
void quantize_rows_avx2(const float* x, int64_t M, int64_t ldx, int64_t K, uint8_t* act);

// y[m, n] = Σ_k w[n, k] · x[m, k] for n in [n0, n1), m in [0, M): w rows of `row_bytes` bytes of type t (a
// qmatmul_supports() type, K = QWeight::block_cols(), a multiple of its block), act the Q8 rows of x. y row stride
// ldy.
void gemm_rows_avx512(gguf::Type t, const uint8_t* w, int64_t row_bytes, int64_t K, int64_t n0, int64_t n1,
                      const uint8_t* act, int64_t M, float* y, int64_t ldy);
void gemm_rows_avx2(gguf::Type t, const uint8_t* w, int64_t row_bytes, int64_t K, int64_t n0, int64_t n1,
                    const uint8_t* act, int64_t M, float* y, int64_t ldy);

}  // namespace jet::ops::qk
