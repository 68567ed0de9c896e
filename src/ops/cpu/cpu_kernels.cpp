// Portable bodies of the CPU decode-step kernels and the run-time choice of the AVX-512 ones.
#include "ops/cpu/cpu_kernels.h"

#include <cmath>

namespace jet::ops::cpu {

bool avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
}

namespace {

float inv_rms(const float* x, float eps, int64_t n) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  return 1.f / std::sqrt(ss / float(n) + eps);
}

}  // namespace

void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out) {
  if (avx512()) return detail::rms_norm_avx512(x, w, eps, n, out);
  const float r = inv_rms(x, eps, n);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * w[i];
}

void add_rms_norm(float* x, const float* y, const float* w, float eps, int64_t n, float* out) {
  if (avx512()) return detail::add_rms_norm_avx512(x, y, w, eps, n, out);
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  rms_norm(x, w, eps, n, out);
}

void silu_mul(const float* g, const float* u, int64_t n, float* out) {
  if (avx512()) return detail::silu_mul_avx512(g, u, n, out);
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
}

void attend(const float* q, const float* k, const float* v, int64_t ld, int64_t S, int64_t D, float scale,
            float* scores, float* out) {
  if (avx512()) return detail::attend_avx512(q, k, v, ld, S, D, scale, scores, out);
  float mx = -INFINITY;
  for (int64_t j = 0; j < S; ++j) {
    float s = 0;
    for (int64_t d = 0; d < D; ++d) s += q[d] * k[j * ld + d];
    scores[j] = s * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0;
  for (int64_t j = 0; j < S; ++j) sum += scores[j] = std::exp(scores[j] - mx);
  for (int64_t d = 0; d < D; ++d) out[d] = 0;
  for (int64_t j = 0; j < S; ++j)
    for (int64_t d = 0; d < D; ++d) out[d] += scores[j] * v[j * ld + d];
  for (int64_t d = 0; d < D; ++d) out[d] /= sum;
}

}  // namespace jet::ops::cpu
