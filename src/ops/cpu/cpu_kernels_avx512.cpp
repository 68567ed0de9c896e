// AVX-512 bodies of the CPU decode-step kernels (cpu_kernels.h); compiled for AVX-512 by the pragma, without the
// precompiled header (as ops/qmatmul/qmatmul_avx512.cpp), run only when cpu::avx512().
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "ops/cpu/cpu_kernels.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12: its own _mm512_reduce_* helpers
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")

namespace jet::ops::cpu::detail {
namespace {

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

// e^x, |relative error| < 2e-7 for x in [-87, 88] (2^n · a degree-6 polynomial of the remainder).
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 silu16(__m512 v) {
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
}

float inv_rms(const float* x, float eps, int64_t n) {
  __m512 ss = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  return 1.f / std::sqrt(_mm512_reduce_add_ps(ss) / float(n) + eps);
}

}  // namespace

void rms_norm_avx512(const float* x, const float* w, float eps, int64_t n, float* out) {
  const __m512 r = _mm512_set1_ps(inv_rms(x, eps, n));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r), _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(out + i, m, y);
  }
}

void add_rms_norm_avx512(float* x, const float* y, const float* w, float eps, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
  rms_norm_avx512(x, w, eps, n, out);
}

void silu_mul_avx512(const float* g, const float* u, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu16(_mm512_maskz_loadu_ps(m, g + i)), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

void silu_avx512(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m, silu16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void delta_rule_step_avx512(const float* q, const float* k, const float* v, float decay, float beta, int64_t K,
                            int64_t V, float* S, float* o) {
  // As the portable body, 64 columns at a time: pass 1 (decay, Sᵀ k), pass 2 (S += k uᵀ, Sᵀ q), four independent
  // accumulators per pass (one FMA chain per 16 columns would wait on its latency).
  const __m512 dec = _mm512_set1_ps(decay), bet = _mm512_set1_ps(beta);
  for (int64_t j0 = 0; j0 < V; j0 += 64) {
    __mmask16 m[4];
    for (int c = 0; c < 4; ++c) m[c] = j0 + 16 * c < V ? tail_mask(V - j0 - 16 * c) : __mmask16(0);
    __m512 acc[4], u[4];
    for (int c = 0; c < 4; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; ++i) {
      float* s = S + i * V + j0;
      const __m512 ki = _mm512_set1_ps(k[i]);
      for (int c = 0; c < 4; ++c) {
        const __m512 sv = _mm512_mul_ps(_mm512_maskz_loadu_ps(m[c], s + 16 * c), dec);
        _mm512_mask_storeu_ps(s + 16 * c, m[c], sv);
        acc[c] = _mm512_fmadd_ps(ki, sv, acc[c]);
      }
    }
    for (int c = 0; c < 4; ++c) {
      u[c] = _mm512_mul_ps(bet, _mm512_sub_ps(_mm512_maskz_loadu_ps(m[c], v + j0 + 16 * c), acc[c]));
      acc[c] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < K; ++i) {
      float* s = S + i * V + j0;
      const __m512 ki = _mm512_set1_ps(k[i]), qi = _mm512_set1_ps(q[i]);
      for (int c = 0; c < 4; ++c) {
        const __m512 sv = _mm512_fmadd_ps(ki, u[c], _mm512_maskz_loadu_ps(m[c], s + 16 * c));
        _mm512_mask_storeu_ps(s + 16 * c, m[c], sv);
        acc[c] = _mm512_fmadd_ps(qi, sv, acc[c]);
      }
    }
    for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(o + j0 + 16 * c, m[c], acc[c]);
  }
}

void attend_avx512(const float* q, const float* k, const float* v, int64_t ld, int64_t S, int64_t D, float scale,
                   float* scores, float* out) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < S; ++j) {
    const float* kj = k + j * ld;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 m = tail_mask(D - d);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, kj + d), acc);
    }
    scores[j] = _mm512_reduce_add_ps(acc) * scale;
  }
  for (int64_t j = 0; j < S; j += 16)
    mx = _mm512_mask_max_ps(mx, tail_mask(S - j), mx, _mm512_maskz_loadu_ps(tail_mask(S - j), scores + j));
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < S; j += 16) {
    const __mmask16 m = tail_mask(S - j);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + j), top)));
    _mm512_mask_storeu_ps(scores + j, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(sum));
  for (int64_t d = 0; d < D; d += 16) {
    const __mmask16 m = tail_mask(D - d);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 1 < S; j += 2) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(scores[j]), _mm512_maskz_loadu_ps(m, v + j * ld + d), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(scores[j + 1]), _mm512_maskz_loadu_ps(m, v + (j + 1) * ld + d), a1);
    }
    if (j < S) a0 = _mm512_fmadd_ps(_mm512_set1_ps(scores[j]), _mm512_maskz_loadu_ps(m, v + j * ld + d), a0);
    _mm512_mask_storeu_ps(out + d, m, _mm512_mul_ps(_mm512_add_ps(a0, a1), inv));
  }
}

}  // namespace jet::ops::cpu::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options
