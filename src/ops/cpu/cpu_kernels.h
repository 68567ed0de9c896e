// Raw fp32 kernels of the CPU decode step (model/cpu_decode.cpp): pointers in, pointers out, no allocation, no
// ATen dispatch — at batch 1 on one or two cores a decode step of a 135M model is ~10 ms, and a few thousand ATen
// ops would cost as much as the math. Each has an AVX-512 body (cpu_kernels_avx512.cpp, picked at run time) and
// a portable one; tests compare both with the float64 references of ops/norms, ops/activations, ops/attention.
#pragma once
#include <cstdint>

namespace jet::ops::cpu {

// The AVX-512 bodies run here (AVX-512 F/BW/VL/DQ at run time).
bool avx512();

// out = rms_norm(x) · w over n values (fp32 math, as ops::rms_norm).
void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out);
// x += y (the residual stream, in place), then out = rms_norm(x) · w (ops::add_rms_norm).
void add_rms_norm(float* x, const float* y, const float* w, float eps, int64_t n, float* out);
// out = silu(g) · u over n values (ops::silu_mul).
void silu_mul(const float* g, const float* u, int64_t n, float* out);
// One query head q [D] over S keys and values (row j at k + j · ld, v + j · ld): out [D] = softmax_j(q·k_j · scale)
// · v_j; scores [S] is scratch.
void attend(const float* q, const float* k, const float* v, int64_t ld, int64_t S, int64_t D, float scale,
            float* scores, float* out);

namespace detail {  // the AVX-512 bodies
void rms_norm_avx512(const float* x, const float* w, float eps, int64_t n, float* out);
void add_rms_norm_avx512(float* x, const float* y, const float* w, float eps, int64_t n, float* out);
void silu_mul_avx512(const float* g, const float* u, int64_t n, float* out);
void attend_avx512(const float* q, const float* k, const float* v, int64_t ld, int64_t S, int64_t D, float scale,
                   float* scores, float* out);
}  // namespace detail

}  // namespace jet::ops::cpu
