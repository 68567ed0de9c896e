// AVX-512 VNNI kernels of ops/qmatmul (see qmatmul.h for the math, qmatmul_kernels.h for the layouts).
// Compiled for AVX-512 by the pragma below (and without the precompiled header, so that no inline function of a
// shared header gets an AVX-512 body here); nothing in this file runs unless cpu::isa() is avx512.
//
// Every weight type is a decoder that turns one unit (two 32-blocks, or one 256-value super-block) into 64-value
// chunks: 64 unsigned bytes u (the quantized values, made non-negative), and per 16 values a float scale and
// offset with w = scale · u + offset. One generic loop multiplies chunks with the activation rows:
// vpdpbusd (u8 × s8 → int32 lanes of 4), to float, times scale · dx per lane; the offsets meet the activations'
// 16-value sums.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "io/gguf.h"
#include "ops/qmatmul/qmatmul_kernels.h"

namespace jet::ops::qk {

#pragma GCC push_options
#pragma GCC diagnostic push
// GCC 12 warns inside its own AVX-512 headers (the undefined upper lanes of the cast intrinsics).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")

namespace {

#include "ops/qmatmul/qmatmul_simd.inc"

inline __m512i nibbles_2x16(const uint8_t* q0, const uint8_t* q1) {
  // [q0 low nibbles, q0 high nibbles, q1 low, q1 high]: the element order of two 32-blocks.
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)q0)),
                                            _mm_loadu_si128((const __m128i*)q1), 1);
  const __m256i m = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // [q0lo, q1lo, q0hi, q1hi]
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}
inline __m512i nibbles_32(const uint8_t* q) {  // [32 low nibbles, 32 high nibbles]
  const __m256i v = _mm256_loadu_si256((const __m256i*)q), m = _mm256_set1_epi8(0x0f);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(v, m)),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), m), 1);
}
// Bit j of the 64-bit mask set -> byte j = 0x10 (the fifth bit of Q5 values).
inline __m512i bit5(uint64_t bits) { return _mm512_maskz_mov_epi8(bits, _mm512_set1_epi8(0x10)); }

// Decoders: kElems values per unit of kBlocks GGUF blocks; unit(b, bb, u, sc, off) fills kElems / 64 chunks.
struct Q4_0 {
  static constexpr int kElems = 64, kBlocks = 2;
  static void unit(const uint8_t* b, int64_t bb, __m512i* u, __m128* sc, __m128* off) {
    u[0] = nibbles_2x16(b + 2, b + bb + 2);
    d_scales(b, bb, 8.f, sc, off);
  }
};
struct Q4_1 {
  static constexpr int kElems = 64, kBlocks = 2;
  static void unit(const uint8_t* b, int64_t bb, __m512i* u, __m128* sc, __m128* off) {
    u[0] = nibbles_2x16(b + 4, b + bb + 4);
    dm_scales(b, bb, sc, off);
  }
};
struct Q5_0 {
  static constexpr int kElems = 64, kBlocks = 2;
  static void unit(const uint8_t* b, int64_t bb, __m512i* u, __m128* sc, __m128* off) {
    u[0] = _mm512_or_si512(nibbles_2x16(b + 6, b + bb + 6), bit5(uint64_t(u32(b + 2)) | uint64_t(u32(b + bb + 2)) << 32));
    d_scales(b, bb, 16.f, sc, off);
  }
};
struct Q5_1 {
  static constexpr int kElems = 64, kBlocks = 2;
  static void unit(const uint8_t* b, int64_t bb, __m512i* u, __m128* sc, __m128* off) {
    u[0] = _mm512_or_si512(nibbles_2x16(b + 8, b + bb + 8), bit5(uint64_t(u32(b + 4)) | uint64_t(u32(b + bb + 4)) << 32));
    dm_scales(b, bb, sc, off);
  }
};
struct Q8_0 {
  static constexpr int kElems = 64, kBlocks = 2;
  static void unit(const uint8_t* b, int64_t bb, __m512i* u, __m128* sc, __m128* off) {
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(b + 2))),
                                         _mm256_loadu_si256((const __m256i*)(b + bb + 2)), 1);
    u[0] = _mm512_xor_si512(q, _mm512_set1_epi8(char(0x80)));  // q + 128
    d_scales(b, bb, 128.f, sc, off);
  }
};

struct Q4_K {
  static constexpr int kElems = 256, kBlocks = 1;
  static void unit(const uint8_t* b, int64_t, __m512i* u, __m128* sc, __m128* off) {
    k4_scales(b, sc, off);
    for (int j = 0; j < 4; ++j) u[j] = nibbles_32(b + 16 + 32 * j);
  }
};
struct Q5_K {
  static constexpr int kElems = 256, kBlocks = 1;
  static void unit(const uint8_t* b, int64_t, __m512i* u, __m128* sc, __m128* off) {
    k4_scales(b, sc, off);
    const __m256i qh = _mm256_loadu_si256((const __m256i*)(b + 16)), one = _mm256_set1_epi8(1);
    for (int j = 0; j < 4; ++j) {
      const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), one);
      const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), one);
      const __m512i h = _mm512_slli_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(h0), h1, 1), 4);
      u[j] = _mm512_or_si512(nibbles_32(b + 48 + 32 * j), h);
    }
  }
};
struct Q6_K {
  static constexpr int kElems = 256, kBlocks = 1;
  static void unit(const uint8_t* b, int64_t, __m512i* u, __m128* sc, __m128* off) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    for (int c = 0; c < 4; ++c) {
      const int h = c / 2, p = c % 2;  // half of the super-block, pair of 32-runs within it
      const __m512i l = _mm512_and_si512(_mm512_srl_epi16(_mm512_loadu_si512(ql + 64 * h), _mm_cvtsi32_si128(4 * p)), m4);
      const __m256i hv = _mm256_loadu_si256((const __m256i*)(qh + 32 * h));
      const __m512i hh = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_srl_epi16(hv, _mm_cvtsi32_si128(4 * p))),
                                            _mm256_srl_epi16(hv, _mm_cvtsi32_si128(4 * p + 2)), 1);
      u[c] = _mm512_or_si512(l, _mm512_slli_epi16(_mm512_and_si512(hh, m2), 4));
      q6k_scales(b, c, sc + c, off + c);
    }
  }
};

// The chunk product: vpdpbusd (u8 × s8 → int32 lanes of 4 values), to float, times scale · dx per lane.
struct Dot {
  using Chunk = __m512i;
  using Acc = __m512;
  using Scale = __m512;  // the chunk's 4 scales, one per lane of 4 values
  static Acc zero() { return _mm512_setzero_ps(); }
  static Scale scale(__m128 sc) {
    return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                                 _mm512_castps128_ps512(sc));
  }
  template <class D>
  static void madd(const Chunk& u, const Scale& scw, const Act& a, int64_t ch, Acc& acc) {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(a.q + ch * 64));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(scw, _mm512_loadu_ps(a.dl + ch * 16)), acc);
  }
  static float sum(const Acc& acc) { return _mm512_reduce_add_ps(acc); }
};

#include "ops/qmatmul/qmatmul_rows.inc"

}  // namespace

void quantize_rows_avx512(const float* x, int64_t M, int64_t ldx, int64_t K, uint8_t* act) {
  const int64_t blocks = (K + 31) / 32;
  // Lanes of the values before K (a last block of fewer than 32 reads zeros past K).
  auto mask = [&](int64_t k0) -> __mmask16 {
    const int64_t left = K - k0;
    return left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  };
  for (int64_t m = 0; m < M; ++m) {
    const ActOut r = act_out(act, K, m);
    const float* xr = x + m * ldx;
    const __m512 sign = _mm512_set1_ps(-0.f);
    for (int64_t b = 0; b < blocks; ++b) {
      const __m512 x0 = _mm512_maskz_loadu_ps(mask(32 * b), xr + 32 * b);
      const __m512 x1 = _mm512_maskz_loadu_ps(mask(32 * b + 16), xr + 32 * b + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
      const float d = amax / 127.f, id = amax > 0 ? 127.f / amax : 0.f;
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
      const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
      _mm_storeu_si128((__m128i*)(r.q + 32 * b), _mm512_cvtsepi32_epi8(q0));
      _mm_storeu_si128((__m128i*)(r.q + 32 * b + 16), _mm512_cvtsepi32_epi8(q1));
      _mm256_storeu_ps(r.dl + 8 * b, _mm256_set1_ps(d));
      r.s16[2 * b] = d * float(_mm512_reduce_add_epi32(q0));
      r.s16[2 * b + 1] = d * float(_mm512_reduce_add_epi32(q1));
    }
    pad_last_chunk(r, blocks);
  }
}

void gemm_rows_avx512(gguf::Type t, const uint8_t* w, int64_t row_bytes, int64_t K, int64_t n0, int64_t n1,
                      const uint8_t* act, int64_t M, float* y, int64_t ldy) {
  gemm_rows_of<Dot>(t, w, row_bytes, K, n0, n1, act, M, y, ldy);
}

#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace jet::ops::qk
