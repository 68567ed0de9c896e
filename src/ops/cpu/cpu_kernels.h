// Raw fp32 kernels of the CPU decode step (model/cpu_decode.cpp): pointers in, pointers out, no allocation, no
// ATen dispatch — at batch 1 on one or two cores a decode step of a 135M model is ~10 ms, and a few thousand ATen
// ops would cost as much as the math. Each has an AVX-512 body (cpu_kernels_avx512.cpp) and a portable one, picked at
// run time (ops/cpu/isa.h); tests compare both with the float64 references of ops/norms, ops/activations,
// ops/attention, ops/linear_attention and the conv steps.
#pragma once
#include <cstdint>

namespace jet::ops::cpu {

// The AVX-512 bodies run here (isa() == Isa::avx512; the portable ones otherwise).
bool avx512();

// Per-thread scratch buffer `slot` of at least n floats (grows, never shrinks: no allocation once warm). Slots 0-2
// belong to the mixer of the layer being run, 3-9 to the decode stack (model/cpu_decode.cpp).
float* scratch(int slot, int64_t n);

// out = rms_norm(x) · w over n values (fp32 math, as ops::rms_norm).
void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out);
// x += y (the residual stream, in place), then out = rms_norm(x) · w (ops::add_rms_norm).
void add_rms_norm(float* x, const float* y, const float* w, float eps, int64_t n, float* out);
// out = silu(g) · u over n values (ops::silu_mul).
void silu_mul(const float* g, const float* u, int64_t n, float* out);
// out = silu(x) over n values (in place when out == x).
void silu(const float* x, int64_t n, float* out);
// x [n] *= scale / sqrt(Σ x² + 1e-6) (ops::l2_normalize, then a scale), in place.
void l2_normalize(float* x, int64_t n, float scale);
// One token of a causal depthwise conv (ops::dynamic_conv_step, ops::short_conv_step): out [C] = act(bias + Σ_j
// taps[c, j] · window[c, j]) with window = (tail [C, W−1], x [C]), taps [C, W] row-major, bias [C] or null, act =
// SiLU or identity; the tail then holds the last W−1 inputs. out may be x.
void conv_step(const float* x, const float* taps, const float* bias, int64_t C, int64_t W, float* tail, bool silu,
               float* out);
// One head of the gated delta rule (ops::linear_attention_step with a scalar decay and the delta rule, q and k
// already normalised, q scaled): S [K, V] ← decay · S; u = β (v − Sᵀ k); S += k uᵀ; o [V] = Sᵀ q.
void delta_rule_step(const float* q, const float* k, const float* v, float decay, float beta, int64_t K, int64_t V,
                     float* S, float* o);
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
void silu_avx512(const float* x, int64_t n, float* out);
void delta_rule_step_avx512(const float* q, const float* k, const float* v, float decay, float beta, int64_t K,
                            int64_t V, float* S, float* o);
}  // namespace detail

}  // namespace jet::ops::cpu
