// Portable bodies of the CPU decode-step kernels and the run-time choice of the AVX-512 ones.
#include "ops/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/isa.h"

namespace jet::ops::cpu {

bool avx512() { return isa() == Isa::avx512; }

float* scratch(int slot, int64_t n) {
  thread_local std::vector<std::vector<float>> bufs;
  if (int(bufs.size()) <= slot) bufs.resize(slot + 1);
  if (int64_t(bufs[slot].size()) < n) bufs[slot].resize(n);
  return bufs[slot].data();
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

void silu(const float* x, int64_t n, float* out) {
  if (avx512()) return detail::silu_avx512(x, n, out);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] / (1.f + std::exp(-x[i]));
}

void l2_normalize(float* x, int64_t n, float scale) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float r = scale / std::sqrt(ss + 1e-6f);
  for (int64_t i = 0; i < n; ++i) x[i] *= r;
}

void conv_step(const float* x, const float* taps, const float* bias, int64_t C, int64_t W, float* tail, bool silu,
               float* out) {
  for (int64_t c = 0; c < C; ++c) {
    const float* w = taps + c * W;
    float* t = tail + c * (W - 1);
    const float xc = x[c];
    float y = bias ? bias[c] : 0.f;
    for (int64_t j = 0; j + 1 < W; ++j) y += w[j] * t[j];
    y += w[W - 1] * xc;
    for (int64_t j = 0; j + 2 < W; ++j) t[j] = t[j + 1];
    if (W > 1) t[W - 2] = xc;
    out[c] = silu ? y / (1.f + std::exp(-y)) : y;
  }
}

void delta_rule_step(const float* q, const float* k, const float* v, float decay, float beta, int64_t K, int64_t V,
                     float* S, float* o) {
  if (avx512()) return detail::delta_rule_step_avx512(q, k, v, decay, beta, K, V, S, o);
  // Columns in blocks of 16: pass 1 decays S and forms Sᵀ k, pass 2 adds k uᵀ and forms Sᵀ q (a block's K × 16
  // values stay in L1 between the passes).
  for (int64_t j0 = 0; j0 < V; j0 += 16) {
    const int64_t n = std::min<int64_t>(16, V - j0);
    float u[16] = {}, acc[16] = {};
    for (int64_t i = 0; i < K; ++i) {
      float* s = S + i * V + j0;
      for (int64_t j = 0; j < n; ++j) acc[j] += k[i] * (s[j] *= decay);
    }
    for (int64_t j = 0; j < n; ++j) u[j] = beta * (v[j0 + j] - acc[j]), acc[j] = 0;
    for (int64_t i = 0; i < K; ++i) {
      float* s = S + i * V + j0;
      for (int64_t j = 0; j < n; ++j) acc[j] += q[i] * (s[j] += k[i] * u[j]);
    }
    for (int64_t j = 0; j < n; ++j) o[j0 + j] = acc[j];
  }
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
