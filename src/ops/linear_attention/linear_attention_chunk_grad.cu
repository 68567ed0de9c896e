// CUDA kernels of the chunked backward of the gated delta rule (linear_attention_chunk_grad.h): the
// forward's prep and state kernels recompute W, T diag(β), the chunk states and v' (bf16), the prep
// also P and T in fp32; then
//   dstate  one block per (sequence, head, 16·NW value columns), the chunks in reverse, dSᵀ in the warps'
//           accumulator registers (the forward's state kernel run backwards): dS_{c+1} (bf16) out,
//           dV'ᵀ = dOᵀ P + (dSᵀ Kᵀ) diag(e^{γ−Γ}/|k|) (bf16 out), dvᵀ = dV'ᵀ T diag(β) (the v gradient),
//           dSᵀ ← e^γ dSᵀ + dOᵀ diag(scale e^Γ/|q|) Q − dV'ᵀ W
//   vgrad   one block per (chunk, head): every product that sums over the value columns, on bf16
//           tensor cores (mma.sync, fp32 accumulators), V in tiles of 64 (two cp.async stages):
//           dO S_cᵀ, V' dS_{c+1}ᵀ, dV' S_cᵀ [64, K]; dO V'ᵀ, dV' Vᵀ [64, 64]; ⟨S_c, dS_{c+1}⟩.
// Math and naming: README.md, "Chunked backward".
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cstdio>
#include <cstdlib>

#include "core/check.h"
#include "core/shape.h"
#include "ops/linear_attention/linear_attention_chunk_grad.h"
#include "ops/linear_attention/linear_attention_chunk_kernels.cuh"

namespace jet::ops {
namespace {

using namespace la_chunk;  // NOLINT(google-build-using-namespace): the shared kernel blocks

struct GradParams {
  const bf16 *q, *k, *v, *w, *dO, *pb, *tb, *hs, *vn;  // q, k, v, W, dO per token; P, T diag(β) per chunk
  const float *kd, *qf, *gcum;                         // [H, Ttot]
  const float* dsf;                                    // [N, H, K, V] final state's gradient, or null
  bf16 *dsg, *dvn, *dv;  // dS_{c+1} [nct, H, V, K], dV' [nct, H, V, 64], dv [Ttot, H, V]
  float* ds0;            // [N, H, K, V]
  float *dqs, *dkt, *dvs, *dp, *dvv, *dst;  // [N, H, NC, 64, K|64], dst [N, H, NC] (Chunks::bhi order)
  // the per-chunk algebra kernel (fused): β [Ttot, H], T [N, H, NC, 64, 64]; out dq, dk [Ttot, H, K] bf16,
  // dβ and the log decay's gradient per token [Ttot, H] fp32
  const float *beta, *tf;
  bf16 *dq, *dk;
  float *dbeta, *dg;
  float scale;
  bool l2;
  int H, V, Ttot;
};

// ---- reverse pass -------------------------------------------------------------------------------------
template <int K, int NW>
struct DStateSmem {
  static constexpr int LK = K + 8, BV = 16 * NW, LV = BV + 8, ST = 2;
  static constexpr size_t ks = 0, ws = ks + kC * LK * sizeof(bf16), qs = ws + kC * LK * sizeof(bf16),
                          os = qs + kC * LK * sizeof(bf16), ps = os + kC * LV * sizeof(bf16),
                          ts = ps + kC * kLT * sizeof(bf16), fl = ts + kC * kLT * sizeof(bf16),
                          stage = fl + (2 * kC + 4) * sizeof(float), bytes = ST * stage;
};

__device__ __forceinline__ uint32_t scale2(uint32_t x, float a, float b) {
  const float2 f = unpack(x);
  return pack(f.x * a, f.y * b);
}

template <int K, int NW>
__global__ void __launch_bounds__(32 * (NW + 1)) dstate_kernel(GradParams p, Chunks m) {
  using L = DStateSmem<K, NW>;
  constexpr int LK = L::LK, BV = L::BV, LV = L::LV, NT = K / 8, ST = L::ST;
  extern __shared__ __align__(128) unsigned char smem[];
  const int n = blockIdx.z, h = blockIdx.y, vb0 = blockIdx.x * BV;
  const int tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H, V = p.V;
  const int g = lane >> 2, t = lane & 3, va0 = vb0 + wp * 16 + g, va1 = va0 + 8;
  int c0, c1;
  m.of_seq(n, c0, c1);
  const int nc = c1 - c0;

  // Stage `buf` receives chunk c: k, W, q rows [64][LK], dO columns [64][LV], P and T diag(β) [64][kLT],
  // e^{γ−Γ}/|k|, scale e^Γ/|q| [64] each and γ. Producer warp only.
  auto issue = [&](int c, int buf) {
    unsigned char* sm = smem + buf * L::stage;
    float* fl = reinterpret_cast<float*>(sm + L::fl);
    int tok0, len;
    m.at(c, tok0, len);
    const size_t row0 = static_cast<size_t>(tok0) * H + h;
    const int64_t HK = static_cast<int64_t>(H) * K, HV = static_cast<int64_t>(H) * V;
    copy_tile<K / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ks), LK, p.k + row0 * K, HK, len, true, p.k, lane);
    copy_tile<K / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ws), LK, p.w + row0 * K, HK, len, true, p.w, lane);
    copy_tile<K / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::qs), LK, p.q + row0 * K, HK, len, true, p.q, lane);
    copy_tile<BV / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::os), LV, p.dO + row0 * V + vb0, HV, len,
                              vb0 + (lane % (BV / 8)) * 8 < V, p.dO, lane);
    const size_t cb = (static_cast<size_t>(c) * H + h) * kC * kC;
    copy_tile<8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ps), kLT, p.pb + cb, kC, kC, true, p.pb, lane);
    copy_tile<8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ts), kLT, p.tb + cb, kC, kC, true, p.tb, lane);
    const size_t hrow = static_cast<size_t>(h) * p.Ttot + tok0;
#pragma unroll
    for (int r = lane; r < kC; r += 32) {
      cp4(fl + r, p.kd + hrow + (r < len ? r : 0), r < len);
      cp4(fl + kC + r, p.qf + hrow + (r < len ? r : 0), r < len);
    }
    if (lane == 0) cp4(fl + 2 * kC, p.gcum + hrow + len - 1, true);
  };
  const bool producer = wp == NW;
  if (producer) {
    if (nc > 0) issue(c1 - 1, 0);
    cp_commit();
    cp_wait<0>();
  }

  float S[NT][4];  // dSᵀ: row g / g+8 = columns va0 / va1, tile nt = state rows 8nt..8nt+7
  const size_t sbase = (static_cast<size_t>(n) * H + h) * K * V;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int v = e < 2 ? va0 : va1, r = nt * 8 + 2 * t + (e & 1);
      S[nt][e] = p.dsf && !producer && v < V ? p.dsf[sbase + static_cast<size_t>(r) * V + v] : 0.f;
    }

  for (int it = 0; it < nc; ++it) {
    const int c = c1 - 1 - it;
    __syncthreads();  // chunk c landed and is visible; every warp is done with the previous stage
    if (producer) {
      if (it + 1 < nc) issue(c - 1, (it + 1) % ST);
      cp_commit();
      cp_wait<0>();
      continue;
    }
    const unsigned char* sm = smem + (it % ST) * L::stage;
    const bf16 *ks = reinterpret_cast<const bf16*>(sm + L::ks), *ws = reinterpret_cast<const bf16*>(sm + L::ws);
    const bf16 *qs = reinterpret_cast<const bf16*>(sm + L::qs), *os = reinterpret_cast<const bf16*>(sm + L::os);
    const bf16 *ps = reinterpret_cast<const bf16*>(sm + L::ps), *ts = reinterpret_cast<const bf16*>(sm + L::ts);
    const float* kd = reinterpret_cast<const float*>(sm + L::fl);
    const float* qf = kd + kC;
    const float gC = kd[2 * kC];

    // dS_{c+1} to dsg (bf16, [V][K]); dSᵀ Kᵀ (16 columns × 64 tokens), then · e^{γ−Γ}/|k| per token.
    bf16* dsg = p.dsg + (static_cast<size_t>(c) * H + h) * V * K;
    float x[8][4] = {};
#pragma unroll
    for (int kb = 0; kb < K / 16; ++kb) {
      const uint32_t x0 = pack(S[2 * kb][0], S[2 * kb][1]), x1 = pack(S[2 * kb][2], S[2 * kb][3]);
      const uint32_t x2 = pack(S[2 * kb + 1][0], S[2 * kb + 1][1]), x3 = pack(S[2 * kb + 1][2], S[2 * kb + 1][3]);
      if (va0 < V) {
        st32(dsg + static_cast<size_t>(va0) * K + kb * 16 + 2 * t, x0);
        st32(dsg + static_cast<size_t>(va0) * K + kb * 16 + 8 + 2 * t, x2);
      }
      if (va1 < V) {
        st32(dsg + static_cast<size_t>(va1) * K + kb * 16 + 2 * t, x1);
        st32(dsg + static_cast<size_t>(va1) * K + kb * 16 + 8 + 2 * t, x3);
      }
      const Frag sa = {x0, x1, x2, x3};
#pragma unroll
      for (int pr = 0; pr < 4; ++pr) {
        Frag b;
        frag_bt(b, ks, LK, pr * 16, kb * 16, lane);
        mma2(x[2 * pr], x[2 * pr + 1], sa, b);
      }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const int i = nt * 8 + 2 * t;
      x[nt][0] *= kd[i], x[nt][1] *= kd[i + 1], x[nt][2] *= kd[i], x[nt][3] *= kd[i + 1];
    }
    // + dOᵀ P (P_ji ≠ 0 for i ≤ j: token block pr takes dO blocks jb ≥ pr).
    Frag oa[4];
#pragma unroll
    for (int jb = 0; jb < 4; ++jb) {
      frag_at(oa[jb], os, LV, jb * 16, wp * 16, lane);
#pragma unroll
      for (int pr = 0; pr <= jb; ++pr) {
        Frag b;
        frag_b(b, ps, kLT, jb * 16, pr * 16, lane);
        mma2(x[2 * pr], x[2 * pr + 1], oa[jb], b);
      }
    }
    // dV' to dvn (bf16, [V][64]) and as bf16 A fragments.
    bf16* dvng = p.dvn + (static_cast<size_t>(c) * H + h) * V * kC;
    Frag xa[4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const int i = nt * 8 + 2 * t;
      const uint32_t lo = pack(x[nt][0], x[nt][1]), hi = pack(x[nt][2], x[nt][3]);
      if (va0 < V) st32(dvng + static_cast<size_t>(va0) * kC + i, lo);
      if (va1 < V) st32(dvng + static_cast<size_t>(va1) * kC + i, hi);
      xa[nt >> 1][(nt & 1) * 2] = lo;
      xa[nt >> 1][(nt & 1) * 2 + 1] = hi;
    }
    {  // dvᵀ = dV'ᵀ (T diag(β)): (T diag(β))_ji ≠ 0 for i ≤ j.
      float y[8][4] = {};
#pragma unroll
      for (int jb = 0; jb < 4; ++jb)
#pragma unroll
        for (int pr = 0; pr <= jb; ++pr) {
          Frag b;
          frag_b(b, ts, kLT, jb * 16, pr * 16, lane);
          mma2(y[2 * pr], y[2 * pr + 1], xa[jb], b);
        }
      int tok0, len;
      m.at(c, tok0, len);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = nt * 8 + 2 * t + (e & 1), v = e < 2 ? va0 : va1;
          if (i < len && v < V) p.dv[(static_cast<size_t>(tok0 + i) * H + h) * V + v] = __float2bfloat16(y[nt][e]);
        }
    }
    // dSᵀ ← e^γ dSᵀ + dOᵀ diag(scale e^Γ/|q|) Q − dV'ᵀ W.
    const float dec = __expf(gC);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) S[nt][e] *= dec;
#pragma unroll
    for (int jb = 0; jb < 4; ++jb) {
      const int j0 = jb * 16 + 2 * t;
      const Frag a = {scale2(oa[jb][0], qf[j0], qf[j0 + 1]), scale2(oa[jb][1], qf[j0], qf[j0 + 1]),
                      scale2(oa[jb][2], qf[j0 + 8], qf[j0 + 9]), scale2(oa[jb][3], qf[j0 + 8], qf[j0 + 9])};
      const Frag na = {xa[jb][0] ^ 0x80008000u, xa[jb][1] ^ 0x80008000u, xa[jb][2] ^ 0x80008000u,
                       xa[jb][3] ^ 0x80008000u};
#pragma unroll
      for (int pr = 0; pr < K / 16; ++pr) {
        Frag b;
        frag_b(b, qs, LK, jb * 16, pr * 16, lane);
        mma2(S[2 * pr], S[2 * pr + 1], a, b);
        frag_b(b, ws, LK, jb * 16, pr * 16, lane);
        mma2(S[2 * pr], S[2 * pr + 1], na, b);
      }
    }
  }
  if (producer || !p.ds0) return;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int v = e < 2 ? va0 : va1, r = nt * 8 + 2 * t + (e & 1);
      if (v < V) p.ds0[sbase + static_cast<size_t>(r) * V + v] = S[nt][e];
    }
}

// ---- products over the value columns, one block (8 warps) per (chunk, head) ------------------------------
constexpr int kGW = 8;    // warps
constexpr int kGBV = 64;  // value columns per tile

template <int K>
struct VGradSmem {
  static constexpr int LK = K + 8;
  // per stage: dO, v ([64 tokens][kLT]), V', dV' ([64 columns][kLT]), S_c, dS_{c+1} ([64 columns][LK])
  static constexpr size_t os = 0, vt = os + kC * kLT * sizeof(bf16), vn = vt + kC * kLT * sizeof(bf16),
                          dvn = vn + kGBV * kLT * sizeof(bf16), hs = dvn + kGBV * kLT * sizeof(bf16),
                          ds = hs + kGBV * LK * sizeof(bf16), stage = ds + kGBV * LK * sizeof(bf16),
                          bytes = 2 * stage;
};

// Stores a warp's accumulator tiles (rows r0 + g, r0 + g + 8; n-tile nt = columns c0 + 8nt..) as fp32.
template <int NT>
__device__ __forceinline__ void store_acc(float* out, int ld, int r0, int c0, const float (&a)[NT][4], int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    float* o = out + (r0 + g) * ld + c0 + nt * 8 + 2 * t;
    *reinterpret_cast<float2*>(o) = make_float2(a[nt][0], a[nt][1]);
    *reinterpret_cast<float2*>(o + 8 * ld) = make_float2(a[nt][2], a[nt][3]);
  }
}

// Warp w: the row block 16·(w % 4) of the outputs; warps 0-3 dO S_cᵀ and dO V'ᵀ (A = dO), warps 4-7 dV' S_cᵀ
// and dV' Vᵀ (A = dV'), and each half of the columns of V' dS_{c+1}ᵀ.
template <int K>
__global__ void __launch_bounds__(32 * kGW) vgrad_kernel(GradParams p, Chunks m) {
  using L = VGradSmem<K>;
  constexpr int LK = L::LK;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float red[kGW];
  const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H, V = p.V;
  const int i0 = (wp & 3) * 16, half = wp >> 2;
  int tok0, len;
  m.at(c, tok0, len);
  const size_t row0 = static_cast<size_t>(tok0) * H + h, cbase = (static_cast<size_t>(c) * H + h) * V;
  const int64_t HV = static_cast<int64_t>(H) * V;
  auto issue = [&](int vt, int buf) {
    unsigned char* sm = smem + buf * L::stage;
    const int v0 = vt * kGBV;
    const bool okc = v0 + (tid % 8) * 8 < V;
    copy_tile<8, 32 * kGW, kC>(reinterpret_cast<bf16*>(sm + L::os), kLT, p.dO + row0 * V + v0, HV, len, okc, p.dO, tid);
    copy_tile<8, 32 * kGW, kC>(reinterpret_cast<bf16*>(sm + L::vt), kLT, p.v + row0 * V + v0, HV, len, okc, p.v, tid);
    copy_tile<8, 32 * kGW, kGBV>(reinterpret_cast<bf16*>(sm + L::vn), kLT, p.vn + (cbase + v0) * kC, kC, V - v0, true,
                                 p.vn, tid);
    copy_tile<8, 32 * kGW, kGBV>(reinterpret_cast<bf16*>(sm + L::dvn), kLT, p.dvn + (cbase + v0) * kC, kC, V - v0, true,
                                 p.dvn, tid);
    copy_tile<K / 8, 32 * kGW, kGBV>(reinterpret_cast<bf16*>(sm + L::hs), LK, p.hs + (cbase + v0) * K, K, V - v0, true,
                                     p.hs, tid);
    copy_tile<K / 8, 32 * kGW, kGBV>(reinterpret_cast<bf16*>(sm + L::ds), LK, p.dsg + (cbase + v0) * K, K, V - v0,
                                     true, p.dsg, tid);
  };
  float X[K / 8][4] = {}, Y[8][4] = {}, Z[K / 16][4] = {};  // dO S_cᵀ | dV' S_cᵀ; dO V'ᵀ | dV' Vᵀ; half of V' dSᵀ
  float dsum = 0.f;
  const int nvt = (V + kGBV - 1) / kGBV;
  issue(0, 0);
  cp_commit();
  for (int vt = 0; vt < nvt; ++vt) {
    if (vt + 1 < nvt) issue(vt + 1, (vt + 1) & 1);
    cp_commit();
    cp_wait<1>();
    __syncthreads();
    const unsigned char* sm = smem + (vt & 1) * L::stage;
    const bf16 *os = reinterpret_cast<const bf16*>(sm + L::os), *vs = reinterpret_cast<const bf16*>(sm + L::vt);
    const bf16 *vn = reinterpret_cast<const bf16*>(sm + L::vn), *dvn = reinterpret_cast<const bf16*>(sm + L::dvn);
    const bf16 *hs = reinterpret_cast<const bf16*>(sm + L::hs), *ds = reinterpret_cast<const bf16*>(sm + L::ds);
#pragma unroll
    for (int kv = 0; kv < kGBV; kv += 16) {
      Frag a, b;
      if (half == 0)
        frag_a(a, os, kLT, i0, kv, lane);  // A[i][v] = dO[i][v]
      else
        frag_at(a, dvn, kLT, kv, i0, lane);  // A[i][v] = dV'[i][v]
#pragma unroll
      for (int pr = 0; pr < K / 16; ++pr) {  // B[v][d] = S_c[d][v]
        frag_b(b, hs, LK, kv, pr * 16, lane);
        mma2(X[2 * pr], X[2 * pr + 1], a, b);
      }
#pragma unroll
      for (int pr = 0; pr < 4; ++pr) {
        if (half == 0)
          frag_b(b, vn, kLT, kv, pr * 16, lane);  // B[v][j] = V'[j][v]
        else
          frag_bt(b, vs, kLT, pr * 16, kv, lane);  // B[v][j] = V[j][v]
        mma2(Y[2 * pr], Y[2 * pr + 1], a, b);
      }
      frag_at(a, vn, kLT, kv, i0, lane);  // A[i][v] = V'[i][v]
#pragma unroll
      for (int pr = 0; pr < K / 32; ++pr) {  // B[v][d] = dS_{c+1}[d][v], this half's columns
        frag_b(b, ds, LK, kv, half * (K / 2) + pr * 16, lane);
        mma2(Z[2 * pr], Z[2 * pr + 1], a, b);
      }
    }
    // ⟨S_c, dS_{c+1}⟩ over this tile (zero rows past V).
    for (int e = tid; e < kGBV * K / 2; e += 32 * kGW) {
      const int r = e / (K / 2), d = (e % (K / 2)) * 2;
      const float2 x = unpack(*reinterpret_cast<const uint32_t*>(hs + r * LK + d));
      const float2 y = unpack(*reinterpret_cast<const uint32_t*>(ds + r * LK + d));
      dsum += x.x * y.x + x.y * y.y;
    }
    __syncthreads();  // the stage is refilled next
  }
  const size_t bhi = m.bhi(c, h, H);
  store_acc(half == 0 ? p.dqs + bhi * kC * K : p.dvs + bhi * kC * K, K, i0, 0, X, lane);
  store_acc(half == 0 ? p.dp + bhi * kC * kC : p.dvv + bhi * kC * kC, kC, i0, 0, Y, lane);
  store_acc(p.dkt + bhi * kC * K, K, i0, half * (K / 2), Z, lane);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) dsum += __shfl_xor_sync(0xffffffffu, dsum, o);
  if (lane == 0) red[wp] = dsum;
  __syncthreads();
  if (tid == 0) {
    float s = 0.f;
    for (int w = 0; w < kGW; ++w) s += red[w];
    p.dst[bhi] = s;
  }
}

// ---- the per-chunk algebra (README.md step 3 after the sums over V), one block (8 warps) per (chunk, head) --
// Everything in fp32 shared memory; the 64×64 and 64×K products on TF32 tensor cores (mma.sync m16n8k8,
// fp32 accumulators) through one generic block product.
constexpr int kCW = 8;  // warps of the per-chunk algebra kernel (16, with row-block pairs, built but not run yet)

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// C (64 × N, row stride ldc) = alpha·op(A) op(B), or C += that when acc. op(A) is 64 × Kd with op(A)[m][k] =
// TA ? A[k·lda + m] : A[m·lda + k]; op(B) is Kd × N with op(B)[k][n] = TB ? B[n·ldb + k] : B[k·ldb + n].
// N, Kd multiples of 8; C must not alias A or B. The block's kCW warps take part; ends with a barrier.
template <bool TA, bool TB, int N, int Kd>
__device__ void block_gemm(float* C, int ldc, const float* A, int lda, const float* B, int ldb, float alpha, bool acc) {
  const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  constexpr int ntn = N / 8;
  static_assert((4 * ntn) % (2 * kCW) == 0, "tile pairs split evenly over the warps");
#pragma unroll 1
  for (int tp = wp; tp < 4 * ntn; tp += 2 * kCW) {  // two tiles (tp, tp + kCW) at a time: independent chains
    int m0[2], n0[2];
    float c[2][4] = {};
#pragma unroll
    for (int u = 0; u < 2; ++u) m0[u] = (tp + kCW * u) / ntn * 16, n0[u] = (tp + kCW * u) % ntn * 8;
#pragma unroll
    for (int k0 = 0; k0 < Kd; k0 += 8) {
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        auto a = [&](int mm, int kk) {
          return TA ? A[(k0 + kk) * lda + m0[u] + mm] : A[(m0[u] + mm) * lda + k0 + kk];
        };
        auto b = [&](int kk, int nn) {
          return TB ? B[(n0[u] + nn) * ldb + k0 + kk] : B[(k0 + kk) * ldb + n0[u] + nn];
        };
        const uint32_t a0 = to_tf32(a(g, t)), a1 = to_tf32(a(g + 8, t)), a2 = to_tf32(a(g, t + 4)),
                       a3 = to_tf32(a(g + 8, t + 4)), b0 = to_tf32(b(t, g)), b1 = to_tf32(b(t + 4, g));
        asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+f"(c[u][0]), "+f"(c[u][1]), "+f"(c[u][2]), "+f"(c[u][3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
      }
    }
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      float* cp = C + (m0[u] + g) * ldc + n0[u] + 2 * t;
      if (acc) {
        cp[0] += alpha * c[u][0], cp[1] += alpha * c[u][1];
        cp[8 * ldc] += alpha * c[u][2], cp[8 * ldc + 1] += alpha * c[u][3];
      } else {
        cp[0] = alpha * c[u][0], cp[1] = alpha * c[u][1], cp[8 * ldc] = alpha * c[u][2], cp[8 * ldc + 1] = alpha * c[u][3];
      }
    }
  }
  __syncthreads();
}

template <int K>
struct CGradSmem {
  static constexpr int LR = K + 4, LS = kC + 4;  // fp32 row strides of [64, K] and [64, 64] buffers
  static constexpr size_t r = kC * LR * sizeof(float), s = kC * LS * sizeof(float), bytes = 4 * r + 4 * s;
};

// Σ_d x[i][d]·y[i][d] for row i of two [64][ld] buffers (a warp; the sum in every lane).
template <int K>
__device__ __forceinline__ float row_dot(const float* x, const float* y, int ld, int i, int lane) {
  float s = 0.f;
  for (int d = lane; d < K; d += 32) s += x[i * ld + d] * y[i * ld + d];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

template <int K>
__global__ void __launch_bounds__(32 * kCW) cgrad_kernel(GradParams p, Chunks m) {
  using L = CGradSmem<K>;
  constexpr int LR = L::LR, LS = L::LS;
  extern __shared__ __align__(128) unsigned char smem[];
  float* R1 = reinterpret_cast<float*>(smem);  // Q̂ = scale q/|q|
  float* R2 = R1 + kC * LR;                     // K̂ = k/|k|
  float* R3 = R2 + kC * LR;                     // dV' S_cᵀ; β e^Γ K̂; V' dS_{c+1}ᵀ; dQ̂
  float* R4 = R3 + kC * LR;                     // dR_W, then dK̂
  float* S1 = R4 + kC * LR;                     // T; K̂K̂ᵀ; E2 + E2ᵀ
  float* S2 = S1 + kC * LS;                     // dV' Vᵀ; dA Tᵀ... ; E2
  float* S3 = S2 + kC * LS;                     // dP, then E1 = dP ⊙ D
  float* S4 = S3 + kC * LS;                     // Tᵀ dV' Vᵀ diag(β) + dR_W Mᵀ; Q̂K̂ᵀ; the pair terms of dΓ
  __shared__ float gam[kC], bet[kC], eg[kC], et[kC], rqv[kC], rkv[kC], dbv[kC], kwv[kC], tkv[kC], dgq[kC], dgm[kC];
  const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H;
  int tok0, len;
  m.at(c, tok0, len);
  const size_t bhi = m.bhi(c, h, H);
  const size_t hrow = static_cast<size_t>(h) * p.Ttot + tok0;
  if (tid < kC) {  // Γ past the chunk's length stays at its last value (no e^{Γi−Γj} > 1 anywhere)
    gam[tid] = p.gcum[hrow + (tid < len ? tid : len - 1)];
    bet[tid] = tid < len ? p.beta[static_cast<size_t>(tok0 + tid) * H + h] : 0.f;
  }
  for (int e = tid; e < kC * K; e += 32 * kCW) {
    const int i = e / K, d = e - i * K;
    const size_t o = (static_cast<size_t>(tok0 + i) * H + h) * K + d;
    R1[i * LR + d] = i < len ? __bfloat162float(p.q[o]) : 0.f;
    R2[i * LR + d] = i < len ? __bfloat162float(p.k[o]) : 0.f;
  }
  const float* tg = p.tf + bhi * kC * kC;
  const float* vvg = p.dvv + bhi * kC * kC;
  const float* dpg = p.dp + bhi * kC * kC;
  const float* vsg = p.dvs + bhi * kC * K;
  for (int e = tid; e < kC * kC / 4; e += 32 * kCW) {
    const int i = e / (kC / 4), j = (e % (kC / 4)) * 4;
    *reinterpret_cast<float4*>(S1 + i * LS + j) = *reinterpret_cast<const float4*>(tg + i * kC + j);
    *reinterpret_cast<float4*>(S2 + i * LS + j) = *reinterpret_cast<const float4*>(vvg + i * kC + j);
    *reinterpret_cast<float4*>(S3 + i * LS + j) = *reinterpret_cast<const float4*>(dpg + i * kC + j);
  }
  for (int e = tid; e < kC * K / 4; e += 32 * kCW) {
    const int i = e / (K / 4), d = (e % (K / 4)) * 4;
    *reinterpret_cast<float4*>(R3 + i * LR + d) = *reinterpret_cast<const float4*>(vsg + i * K + d);
  }
  __syncthreads();
  const float gC = gam[len - 1];
  for (int i = wp; i < kC; i += kCW) {  // the L2 norms; Q̂, K̂
    const float sq = row_dot<K>(R1, R1, LR, i, lane), sk = row_dot<K>(R2, R2, LR, i, lane);
    const float rq = p.l2 ? rsqrtf(sq + 1e-6f) : 1.f, rk = p.l2 ? rsqrtf(sk + 1e-6f) : 1.f;
    for (int d = lane; d < K; d += 32) R1[i * LR + d] *= rq * p.scale, R2[i * LR + d] *= rk;
    if (lane == 0) rqv[i] = rq, rkv[i] = rk, eg[i] = __expf(gam[i]), et[i] = __expf(gC - gam[i]);
  }
  __syncthreads();
  // X1 = Tᵀ (dV' Vᵀ): its diagonal is Σ_v dR_U ⊙ V; then X1 diag(β).
  block_gemm<true, false, kC, kC>(S4, LS, S1, LS, S2, LS, 1.f, false);
  if (tid < kC) dbv[tid] = S4[tid * LS + tid];
  __syncthreads();
  for (int e = tid; e < kC * kC; e += 32 * kCW) S4[(e / kC) * LS + e % kC] *= bet[e % kC];
  // dR_W = −Tᵀ (dV' S_cᵀ)
  block_gemm<true, false, K, kC>(R4, LR, S1, LS, R3, LR, -1.f, false);
  for (int e = tid; e < kC * K; e += 32 * kCW) {  // M = diag(β e^Γ) K̂ (W = T M)
    const int i = e / K, d = e - i * K;
    R3[i * LR + d] = bet[i] * eg[i] * R2[i * LR + d];
  }
  __syncthreads();
  // dR_U Uᵀ + dR_W Wᵀ = (X1 diag(β) + dR_W Mᵀ) Tᵀ
  block_gemm<false, true, kC, K>(S4, LS, R4, LR, R3, LR, 1.f, true);
  block_gemm<false, true, kC, kC>(S2, LS, S4, LS, S1, LS, 1.f, false);
  for (int i = wp; i < kC; i += kCW) {  // kw = e^Γ Σ dR_W ⊙ K̂; dK̂ starts as β e^Γ dR_W
    const float s = row_dot<K>(R4, R2, LR, i, lane);
    if (lane == 0) kwv[i] = eg[i] * s;
    for (int d = lane; d < K; d += 32) R4[i * LR + d] *= bet[i] * eg[i];
  }
  block_gemm<false, true, kC, K>(S1, LS, R2, LR, R2, LR, 1.f, false);  // K̂K̂ᵀ (T no longer needed)
  block_gemm<false, true, kC, K>(S4, LS, R1, LR, R2, LR, 1.f, false);  // Q̂K̂ᵀ
  for (int e = tid; e < kC * kC; e += 32 * kCW) {
    const int i = e / kC, j = e % kC;
    const float D = j <= i ? __expf(gam[i] - gam[j]) : 0.f, Ds = j < i ? D : 0.f;
    const float dA = j < i ? -S2[i * LS + j] : 0.f;
    const float B0 = S1[i * LS + j] * Ds, E1 = S3[i * LS + j] * D;
    S4[i * LS + j] = E1 * S4[i * LS + j] + dA * bet[i] * B0;  // the pair terms e^{Γi−Γj} of dΓ
    S3[i * LS + j] = E1;
    S2[i * LS + j] = bet[i] * dA * Ds;  // E2
    S1[i * LS + j] = dA * B0;
  }
  __syncthreads();
  if (tid < kC) {
    float sb = 0.f;
    for (int j = 0; j < kC; ++j) sb += S1[tid * LS + j];
    dbv[tid] += kwv[tid] + sb;
  }
  for (int i = wp; i < kC; i += kCW) {  // pair terms: exclusive prefix sums along each row, in place
    const float x0 = S4[i * LS + 2 * lane], x1 = S4[i * LS + 2 * lane + 1];
    float inc = x0 + x1;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float y = __shfl_up_sync(0xffffffffu, inc, o);
      if (lane >= o) inc += y;
    }
    const float ex = inc - x0 - x1;
    S4[i * LS + 2 * lane] = ex, S4[i * LS + 2 * lane + 1] = ex + x0;
  }
  __syncthreads();
  if (tid < kC) {  // rows ≥ t of the columns < t
    float sm = 0.f;
    for (int i = tid; i < kC; ++i) sm += S4[i * LS + tid];
    dgm[tid] = sm;
  }
  __syncthreads();
  for (int e = tid; e < kC * kC; e += 32 * kCW) {
    const int i = e / kC, j = e % kC;
    S1[i * LS + j] = S2[i * LS + j] + S2[j * LS + i];
  }
  __syncthreads();
  block_gemm<false, false, K, kC>(R4, LR, S1, LS, R2, LR, 1.f, true);  // + (E2 + E2ᵀ) K̂
  block_gemm<true, false, K, kC>(R4, LR, S3, LS, R1, LR, 1.f, true);   // + E1ᵀ Q̂
  const float* ktg = p.dkt + bhi * kC * K;
  const float* qsg = p.dqs + bhi * kC * K;
  for (int i = wp; i < kC; i += kCW) {  // + e^{γ−Γ} V' dS_{c+1}ᵀ; tk = Σ that ⊙ K̂
    float s = 0.f;
    for (int d = lane; d < K; d += 32) {
      const float x = et[i] * ktg[i * K + d];
      R4[i * LR + d] += x;
      s += x * R2[i * LR + d];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) tkv[i] = s;
  }
  __syncthreads();
  block_gemm<false, false, K, kC>(R3, LR, S3, LS, R2, LR, 1.f, false);  // dQ̂ = E1 K̂ + e^Γ dO S_cᵀ
  for (int i = wp; i < kC; i += kCW) {
    float s = 0.f;
    for (int d = lane; d < K; d += 32) {
      const float x = qsg[i * K + d];
      R3[i * LR + d] += eg[i] * x;
      s += x * R1[i * LR + d];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) dgq[i] = eg[i] * s + bet[i] * kwv[i];
  }
  __syncthreads();
  if (tid < kC && tid < len) {  // dg_t = Σ_{i≥t} dΓ_i + Σ_{i<t} tk_i + e^γ ⟨S_c, dS_{c+1}⟩ + pair terms
    float s = __expf(gC) * p.dst[bhi] + dgm[tid];
    for (int i = 0; i < kC; ++i) s += i >= tid ? dgq[i] : tkv[i];
    const size_t o = static_cast<size_t>(tok0 + tid) * H + h;
    p.dg[o] = s;
    p.dbeta[o] = dbv[tid];
  }
  for (int i = wp; i < len; i += kCW) {  // the L2 norms' backward: dx = r (dŷ − ŷ (ŷ·dŷ)), scale on q
    const float qd = row_dot<K>(R1, R3, LR, i, lane), kd = row_dot<K>(R2, R4, LR, i, lane);
    const float rq = rqv[i], rk = rkv[i], sc = p.scale;
    const size_t o = (static_cast<size_t>(tok0 + i) * H + h) * K;
    for (int d = lane; d < K; d += 32) {
      const float dq = p.l2 ? rq * (sc * R3[i * LR + d] - R1[i * LR + d] * qd / sc) : sc * R3[i * LR + d];
      const float dk = p.l2 ? rk * (R4[i * LR + d] - R2[i * LR + d] * kd) : R4[i * LR + d];
      p.dq[o + d] = __float2bfloat16(dq);
      p.dk[o + d] = __float2bfloat16(dk);
    }
  }
}

template <int K>
void run_grad(const Params& p, GradParams& gp, const Chunks& m, int N, cudaStream_t stream) {
  const int H = p.H, V = p.V;
  KernelTimer<5> timer(stream, "JET_LA_BWD_PROFILE", "la_chunk_grad", {"prep", "state", "dstate", "vgrad", "cgrad"});
  timer.mark();
  {
    auto kern = prep_kernel<K, true, true>;
    set_smem(kern, PrepSmem<K>::bytes_bwd);
    kern<<<dim3(m.nct, H), 128, PrepSmem<K>::bytes_bwd, stream>>>(p, m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  timer.mark();
  const int nw = state_warps(V, H, N);
  {
    auto launch = [&](auto kern, int nw, size_t bytes) {
      set_smem(kern, bytes);
      const int bv = 16 * nw;
      kern<<<dim3((V + bv - 1) / bv, H, N), 32 * (nw + 1), bytes, stream>>>(p, m);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    switch (nw) {
      case 8: launch(state_kernel<K, 8, 2, true>, 8, StateSmem<K, 8, 2, true>::bytes); break;
      case 4: launch(state_kernel<K, 4, 2, true>, 4, StateSmem<K, 4, 2, true>::bytes); break;
      default: launch(state_kernel<K, 2, 3, true>, 2, StateSmem<K, 2, 3, true>::bytes); break;
    }
  }
  timer.mark();
  {
    auto launch = [&](auto kern, int nw, size_t bytes) {
      set_smem(kern, bytes);
      const int bv = 16 * nw;
      kern<<<dim3((V + bv - 1) / bv, H, N), 32 * (nw + 1), bytes, stream>>>(gp, m);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    switch (nw) {
      case 8: launch(dstate_kernel<K, 8>, 8, DStateSmem<K, 8>::bytes); break;
      case 4: launch(dstate_kernel<K, 4>, 4, DStateSmem<K, 4>::bytes); break;
      default: launch(dstate_kernel<K, 2>, 2, DStateSmem<K, 2>::bytes); break;
    }
  }
  timer.mark();
  {
    auto kern = vgrad_kernel<K>;
    set_smem(kern, VGradSmem<K>::bytes);
    kern<<<dim3(m.nct, H), 32 * kGW, VGradSmem<K>::bytes, stream>>>(gp, m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  timer.mark();
  if (gp.dq) {
    auto kern = cgrad_kernel<K>;
    set_smem(kern, CGradSmem<K>::bytes);
    kern<<<dim3(m.nct, H), 32 * kCW, CGradSmem<K>::bytes, stream>>>(gp, m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  timer.mark();
}

}  // namespace


ChunkGradCuda linear_attention_chunk_grad_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& g, bool fixed_decay, const at::Tensor& beta,
                                               const at::Tensor& initial_state, const at::Tensor& dO,
                                               const at::Tensor& dS, double scale, bool qk_l2norm, bool fused) {
  JET_CHECK(q.is_cuda() && q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4,
            "linear_attention_chunk_grad_cuda: q, k must be CUDA [B, T, H, K], v [B, T, H, V]");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  JET_CHECK(v.size(0) == B && v.size(1) == T && v.size(2) == H && dO.sizes() == v.sizes(),
            "linear_attention_chunk_grad_cuda: v {} / dO {} do not match q {}", shape_str(v.sizes()),
            shape_str(dO.sizes()), shape_str(q.sizes()));
  JET_CHECK(q.scalar_type() == at::kBFloat16 && k.scalar_type() == at::kBFloat16 &&
                v.scalar_type() == at::kBFloat16 && dO.scalar_type() == at::kBFloat16,
            "linear_attention_chunk_grad_cuda: q, k, v, dO must be bf16");
  JET_CHECK(linear_attention_chunk_cuda_supports(K, V), "linear_attention_chunk_grad_cuda: K={} V={} not supported", K, V);
  JET_CHECK(beta.defined() && beta.scalar_type() == at::kFloat && beta.sizes() == at::IntArrayRef({B, T, H}),
            "linear_attention_chunk_grad_cuda: beta must be fp32 [B, T, H] (the delta rule)");
  if (g.defined())
    JET_CHECK(g.scalar_type() == at::kFloat && (fixed_decay ? g.numel() == H : g.sizes() == at::IntArrayRef({B, T, H})),
              "linear_attention_chunk_grad_cuda: g must be fp32 [H] (fixed) or [B, T, H]");
  JET_CHECK(T > 0 && B * T < (int64_t{1} << 30), "linear_attention_chunk_grad_cuda: bad length T = {}", T);
  for (const at::Tensor* s : {&initial_state, &dS})
    if (s->defined())
      JET_CHECK(s->sizes() == at::IntArrayRef({B, H, K, V}) && s->scalar_type() == at::kFloat,
                "linear_attention_chunk_grad_cuda: states must be fp32 [{}, {}, {}, {}]", B, H, K, V);
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t Ttot = B * T, NC = (T + kC - 1) / kC, nct = B * NC;
  Chunks m{nullptr, static_cast<int>(nct), static_cast<int>(T), static_cast<int>(NC)};
  auto bfo = q.options().dtype(at::kBFloat16), f32 = q.options().dtype(at::kFloat);
  auto aligned = [](at::Tensor t) {
    t = t.contiguous();
    return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 ? t.clone() : t;
  };
  const at::Tensor qc = aligned(q), kc = aligned(k), vc = aligned(v), oc = aligned(dO);
  const at::Tensor gc = g.defined() ? g.contiguous() : g, bc = beta.contiguous();
  const at::Tensor s0 = initial_state.defined() ? initial_state.contiguous() : initial_state;
  const at::Tensor dsf = dS.defined() ? dS.contiguous() : dS;
  at::Tensor rk = at::empty({H, Ttot}, f32), gcum = at::empty({H, Ttot}, f32), kd = at::empty({H, Ttot}, f32);
  at::Tensor qf = at::empty({H, Ttot}, f32), w = at::empty({Ttot, H, K}, bfo);
  at::Tensor tb = at::empty({nct, H, kC, kC}, bfo), pb = at::empty({nct, H, kC, kC}, bfo);
  at::Tensor hs = at::empty({nct, H, V, K}, bfo), vn = at::empty({nct, H, V, kC}, bfo);
  at::Tensor sf = at::empty({B, H, K, V}, f32), dsg = at::empty({nct, H, V, K}, bfo), dvn = at::empty({nct, H, V, kC}, bfo);
  ChunkGradCuda r;
  r.T = at::empty({B, H, NC, kC, kC}, f32);
  r.dv = at::empty({B, T, H, V}, bfo);
  r.ds0 = at::empty({B, H, K, V}, f32);
  r.dQs = at::empty({B, H, NC, kC, K}, f32);
  r.dKt = at::empty_like(r.dQs);
  r.dVS = at::empty_like(r.dQs);
  r.dP = at::empty({B, H, NC, kC, kC}, f32);
  r.dVV = at::empty_like(r.dP);
  r.dstate = at::empty({B, H, NC}, f32);

  Params p{};
  p.q = reinterpret_cast<const bf16*>(qc.data_ptr());
  p.k = reinterpret_cast<const bf16*>(kc.data_ptr());
  p.v = reinterpret_cast<const bf16*>(vc.data_ptr());
  p.g = gc.defined() ? gc.data_ptr<float>() : nullptr;
  p.gs_t = fixed_decay ? 0 : H, p.gs_h = 1;
  p.beta = bc.data_ptr<float>();
  p.s0 = s0.defined() ? s0.data_ptr<float>() : nullptr;
  p.rk = rk.data_ptr<float>();
  p.gcum = gcum.data_ptr<float>();
  p.kd = kd.data_ptr<float>();
  p.w = reinterpret_cast<bf16*>(w.data_ptr());
  p.tb = reinterpret_cast<bf16*>(tb.data_ptr());
  p.hs = reinterpret_cast<bf16*>(hs.data_ptr());
  p.vn = reinterpret_cast<bf16*>(vn.data_ptr());
  p.o = nullptr;
  p.sf = sf.data_ptr<float>();
  p.pb = reinterpret_cast<bf16*>(pb.data_ptr());
  p.tf = r.T.data_ptr<float>();
  p.qf = qf.data_ptr<float>();
  p.H = static_cast<int>(H), p.V = static_cast<int>(V), p.Ttot = static_cast<int>(Ttot);
  p.scale = static_cast<float>(scale), p.l2 = qk_l2norm;

  GradParams gp{};
  gp.q = p.q, gp.k = p.k, gp.v = p.v, gp.w = p.w;
  gp.dO = reinterpret_cast<const bf16*>(oc.data_ptr());
  gp.pb = p.pb, gp.tb = p.tb, gp.hs = p.hs, gp.vn = p.vn;
  gp.kd = p.kd, gp.qf = p.qf, gp.gcum = p.gcum;
  gp.dsf = dsf.defined() ? dsf.data_ptr<float>() : nullptr;
  gp.dsg = reinterpret_cast<bf16*>(dsg.data_ptr());
  gp.dvn = reinterpret_cast<bf16*>(dvn.data_ptr());
  gp.dv = reinterpret_cast<bf16*>(r.dv.data_ptr());
  gp.ds0 = r.ds0.data_ptr<float>();
  gp.dqs = r.dQs.data_ptr<float>(), gp.dkt = r.dKt.data_ptr<float>(), gp.dvs = r.dVS.data_ptr<float>();
  gp.dp = r.dP.data_ptr<float>(), gp.dvv = r.dVV.data_ptr<float>(), gp.dst = r.dstate.data_ptr<float>();
  gp.H = p.H, gp.V = p.V, gp.Ttot = p.Ttot;
  gp.beta = p.beta, gp.tf = p.tf, gp.scale = p.scale, gp.l2 = qk_l2norm;
  if (fused) {
    r.dq = at::empty({B, T, H, K}, bfo);
    r.dk = at::empty({B, T, H, K}, bfo);
    r.dbeta = at::empty({B, T, H}, f32);
    r.dg = at::empty({B, T, H}, f32);
    gp.dq = reinterpret_cast<bf16*>(r.dq.data_ptr());
    gp.dk = reinterpret_cast<bf16*>(r.dk.data_ptr());
    gp.dbeta = r.dbeta.data_ptr<float>();
    gp.dg = r.dg.data_ptr<float>();
  }

  auto stream = at::cuda::getCurrentCUDAStream();
  const int N = static_cast<int>(B);
  switch (K) {
    case 32: run_grad<32>(p, gp, m, N, stream); break;
    case 64: run_grad<64>(p, gp, m, N, stream); break;
    case 96: run_grad<96>(p, gp, m, N, stream); break;
    default: run_grad<128>(p, gp, m, N, stream); break;
  }
  return r;
}

}  // namespace jet::ops
