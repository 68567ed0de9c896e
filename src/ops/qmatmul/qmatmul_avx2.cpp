// AVX2 kernels of ops/qmatmul (CPUs without AVX-512 VNNI): the same decoders, layouts and row loop as
// qmatmul_avx512.cpp (qmatmul_simd.inc, qmatmul_rows.inc), each 64-value chunk held as two 256-bit halves. The
// product of a half with 32 activation bytes is vpmaddubsw (u8 × s8 → int16 pairs) then vpmaddwd by ones (→ int32
// lanes of 4 values); the pairs cannot saturate: the unsigned values of the 4-, 5- and 6-bit types are at most 63
// (2 · 63 · 127 < 2^15), and Q8_0 keeps its signed values (|w| · sign(x, w): at most 2 · 128 · 127 < 2^15) with no
// offset. Compiled for AVX2 by the pragma below, without the precompiled header (as the AVX-512 unit); nothing here
// runs unless cpu::isa() is avx2.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "io/gguf.h"
#include "ops/qmatmul/qmatmul_kernels.h"

namespace jet::ops::qk {

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace {

#include "ops/qmatmul/qmatmul_simd.inc"

// 64 decoded values: [values 0-31, values 32-63].
struct Halves {
  __m256i h[2];
};

inline __m256i nibbles_16(const uint8_t* q) {  // one 32-block's 16 bytes: [16 low nibbles, 16 high nibbles]
  const __m128i v = _mm_loadu_si128((const __m128i*)q), m = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}
inline Halves nibbles_32(const uint8_t* q) {  // [32 low nibbles], [32 high nibbles]
  const __m256i v = _mm256_loadu_si256((const __m256i*)q), m = _mm256_set1_epi8(0x0f);
  return {{_mm256_and_si256(v, m), _mm256_and_si256(_mm256_srli_epi16(v, 4), m)}};
}
// Bit j of the 32-bit mask set -> byte j = 0x10 (the fifth bit of Q5 values).
inline __m256i bit5(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(  // byte j holds byte j / 8 of bits
      _mm256_set1_epi32(int(bits)), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i sel = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, sel), sel), _mm256_set1_epi8(0x10));
}

// Decoders: kElems values per unit of kBlocks GGUF blocks; unit(b, bb, u, sc, off) fills kElems / 64 chunks.
// kSigned: the bytes are signed values with no offset (Q8_0), else unsigned with w = scale · u + offset.
struct Q4_0 {
  static constexpr int kElems = 64, kBlocks = 2;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t bb, Halves* u, __m128* sc, __m128* off) {
    u[0] = {{nibbles_16(b + 2), nibbles_16(b + bb + 2)}};
    d_scales(b, bb, 8.f, sc, off);
  }
};
struct Q4_1 {
  static constexpr int kElems = 64, kBlocks = 2;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t bb, Halves* u, __m128* sc, __m128* off) {
    u[0] = {{nibbles_16(b + 4), nibbles_16(b + bb + 4)}};
    dm_scales(b, bb, sc, off);
  }
};
struct Q5_0 {
  static constexpr int kElems = 64, kBlocks = 2;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t bb, Halves* u, __m128* sc, __m128* off) {
    u[0] = {{_mm256_or_si256(nibbles_16(b + 6), bit5(u32(b + 2))),
             _mm256_or_si256(nibbles_16(b + bb + 6), bit5(u32(b + bb + 2)))}};
    d_scales(b, bb, 16.f, sc, off);
  }
};
struct Q5_1 {
  static constexpr int kElems = 64, kBlocks = 2;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t bb, Halves* u, __m128* sc, __m128* off) {
    u[0] = {{_mm256_or_si256(nibbles_16(b + 8), bit5(u32(b + 4))),
             _mm256_or_si256(nibbles_16(b + bb + 8), bit5(u32(b + bb + 4)))}};
    dm_scales(b, bb, sc, off);
  }
};
struct Q8_0 {
  static constexpr int kElems = 64, kBlocks = 2;
  static constexpr bool kSigned = true;
  static void unit(const uint8_t* b, int64_t bb, Halves* u, __m128* sc, __m128* off) {
    u[0] = {{_mm256_loadu_si256((const __m256i*)(b + 2)), _mm256_loadu_si256((const __m256i*)(b + bb + 2))}};
    d_scales(b, bb, 0.f, sc, off);
  }
};
struct Q4_K {
  static constexpr int kElems = 256, kBlocks = 1;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t, Halves* u, __m128* sc, __m128* off) {
    k4_scales(b, sc, off);
    for (int j = 0; j < 4; ++j) u[j] = nibbles_32(b + 16 + 32 * j);
  }
};
struct Q5_K {
  static constexpr int kElems = 256, kBlocks = 1;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t, Halves* u, __m128* sc, __m128* off) {
    k4_scales(b, sc, off);
    const __m256i qh = _mm256_loadu_si256((const __m256i*)(b + 16)), one = _mm256_set1_epi8(1);
    for (int j = 0; j < 4; ++j) {
      u[j] = nibbles_32(b + 48 + 32 * j);
      for (int k = 0; k < 2; ++k) {
        const __m256i h = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + k)), one);
        u[j].h[k] = _mm256_or_si256(u[j].h[k], _mm256_slli_epi16(h, 4));
      }
    }
  }
};
struct Q6_K {
  static constexpr int kElems = 256, kBlocks = 1;
  static constexpr bool kSigned = false;
  static void unit(const uint8_t* b, int64_t, Halves* u, __m128* sc, __m128* off) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int c = 0; c < 4; ++c) {
      const int h = c / 2, p = c % 2;  // half of the super-block, pair of 32-runs within it
      const __m256i hv = _mm256_loadu_si256((const __m256i*)(b + 128 + 32 * h));
      for (int k = 0; k < 2; ++k) {
        const __m256i l = _mm256_loadu_si256((const __m256i*)(b + 64 * h + 32 * k));
        const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(l, _mm_cvtsi32_si128(4 * p)), m4);
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hv, _mm_cvtsi32_si128(4 * p + 2 * k)), m2);
        u[c].h[k] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
      }
      q6k_scales(b, c, sc + c, off + c);
    }
  }
};

// The chunk product, per half: vpmaddubsw + vpmaddwd (int32 lanes of 4 values), to float, times scale · dx per lane.
struct Dot {
  using Chunk = Halves;
  using Acc = __m256;
  struct Scale {
    __m256 h[2];  // the two scales of each half, one per lane of 4 values
  };
  static Acc zero() { return _mm256_setzero_ps(); }
  static Scale scale(__m128 sc) {
    const __m256 s = _mm256_castps128_ps256(sc);
    return {{_mm256_permutevar8x32_ps(s, _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0)),
             _mm256_permutevar8x32_ps(s, _mm256_set_epi32(3, 3, 3, 3, 2, 2, 2, 2))}};
  }
  template <class D>
  static void madd(const Chunk& u, const Scale& scw, const Act& a, int64_t ch, Acc& acc) {
    for (int k = 0; k < 2; ++k) {
      const __m256i x = _mm256_loadu_si256((const __m256i*)(a.q + ch * 64 + 32 * k));
      const __m256i pairs = D::kSigned ? _mm256_maddubs_epi16(_mm256_sign_epi8(u.h[k], u.h[k]), _mm256_sign_epi8(x, u.h[k]))
                                       : _mm256_maddubs_epi16(u.h[k], x);
      const __m256i dot = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(scw.h[k], _mm256_loadu_ps(a.dl + ch * 16 + 8 * k)),
                            acc);
    }
  }
  static float sum(const Acc& acc) {
    return hsum128(_mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
  }
};

#include "ops/qmatmul/qmatmul_rows.inc"

inline int32_t hsum_epi32(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, _MM_SHUFFLE(2, 3, 0, 1))));
}

}  // namespace

void quantize_rows_avx2(const float* x, int64_t M, int64_t ldx, int64_t K, uint8_t* act) {
  const int64_t blocks = (K + 31) / 32;
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t m = 0; m < M; ++m) {
    const ActOut r = act_out(act, K, m);
    const float* xr = x + m * ldx;
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (int64_t b = 0; b < blocks; ++b) {
      __m256 v[4];
      __m256 amax = _mm256_setzero_ps();
      for (int i = 0; i < 4; ++i) {  // masked loads: zeros past K
        const int64_t k0 = 32 * b + 8 * i;
        v[i] = _mm256_maskload_ps(xr + k0, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(K - k0)), lane));
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
      }
      __m128 mx = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
      mx = _mm_max_ps(mx, _mm_movehl_ps(mx, mx));
      mx = _mm_max_ss(mx, _mm_movehdup_ps(mx));
      const float a = _mm_cvtss_f32(mx), d = a / 127.f, id = a > 0 ? 127.f / a : 0.f;
      __m256i qi[4];
      for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(id)));
      // int32 -> int8 in order: the packs interleave 128-bit lanes, the permutation restores it.
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
      _mm256_storeu_si256((__m256i*)(r.q + 32 * b), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
      _mm256_storeu_ps(r.dl + 8 * b, _mm256_set1_ps(d));
      r.s16[2 * b] = d * float(hsum_epi32(_mm256_add_epi32(qi[0], qi[1])));
      r.s16[2 * b + 1] = d * float(hsum_epi32(_mm256_add_epi32(qi[2], qi[3])));
    }
    pad_last_chunk(r, blocks);
  }
}

void gemm_rows_avx2(gguf::Type t, const uint8_t* w, int64_t row_bytes, int64_t K, int64_t n0, int64_t n1,
                    const uint8_t* act, int64_t M, float* y, int64_t ldy) {
  gemm_rows_of<Dot>(t, w, row_bytes, K, n0, n1, act, M, y, ldy);
}

#pragma GCC pop_options

}  // namespace jet::ops::qk
