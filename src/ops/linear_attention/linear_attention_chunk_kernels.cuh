// Device building blocks of the CUDA chunked linear attention, shared by the forward
// (linear_attention_chunk.cu) and the backward (linear_attention_chunk_grad.cu): cp.async tile copies,
// mma.sync/ldmatrix fragments, the chunk map, and the forward's prep and state kernels (the backward
// recomputes with them). See linear_attention_chunk_cuda.h and README.md.
#pragma once
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace jet::ops::la_chunk {


using bf16 = __nv_bfloat16;
constexpr int kC = 64;       // chunk length
constexpr int kLT = kC + 8;  // bf16 row stride of a 64-column tile

// 16-byte async copy global → shared (zero-filled when !valid; src must still be a mapped address).
__device__ __forceinline__ void cp16(void* dst, const void* src, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp4(void* dst, const void* src, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Tile copy by cp.async: rows [0, ROWS) of SEG 16-byte segments each, row i from src + i·sld (elements) to
// dst + i·dld, zero-filled where i ≥ nrows or !ok; NTHR threads (thread tid), each with a fixed segment
// and rows RPP apart, so that the addresses only step by constants. `safe` is a mapped address for the
// zero fills.
template <int SEG, int NTHR, int ROWS>
__device__ __forceinline__ void copy_tile(bf16* dst, int dld, const bf16* src, int64_t sld, int nrows, bool ok,
                                          const bf16* safe, int tid) {
  static_assert(SEG <= NTHR, "a row takes more segments than there are threads");
  constexpr int RPP = NTHR / SEG;
  const int r = tid / SEG, sg = tid - r * SEG;
  if (r >= RPP) return;
  dst += r * dld + sg * 8;
  src += r * sld + sg * 8;
#pragma unroll 4
  for (int i = r; i < ROWS; i += RPP, dst += RPP * dld, src += RPP * sld) {
    const bool v = ok && i < nrows;
    cp16(dst, v ? src : safe, v);
  }
}

// ---- tensor-core fragments (PTX ISA, mma.m16n8k16 bf16): g = lane / 4, t = lane % 4 ------------------
// A 16×16: {a0 a1} (row g, cols 2t..2t+1), {a2 a3} (row g+8), {a4 a5} (row g, cols 8+2t..), {a6 a7} (row g+8,
// cols 8+2t..). B 16×8: {b0 b1} (rows 2t..2t+1, col g), {b2 b3} (rows 8+2t..). C 16×8: {c0 c1} (row g, cols
// 2t..2t+1), {c2 c3} (row g+8). Two C tiles side by side (cols 0-7, 8-15) are, packed to bf16, one A
// fragment: a product's result feeds the next product from registers.
using Frag = uint32_t[4];

__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ float2 unpack(uint32_t x) {
  __nv_bfloat162 v;
  *reinterpret_cast<uint32_t*>(&v) = x;
  return __bfloat1622float2(v);
}
// ldmatrix .x4 (TRANS: .trans): four 8×8 bf16 matrices, row addresses from lanes 0-7, 8-15, 16-23, 24-31.
#define JET_LDSM(SUFFIX)                                                                             \
  asm volatile("ldmatrix.sync.aligned.m8n8.x4" SUFFIX ".shared.b16 {%0, %1, %2, %3}, [%4];\n"       \
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])                                      \
               : "r"(static_cast<unsigned>(__cvta_generic_to_shared(p)))                              \
               : "memory")
template <bool TRANS>
__device__ __forceinline__ void ldsm(Frag& r, const bf16* p) {
  if constexpr (TRANS)
    JET_LDSM(".trans");
  else
    JET_LDSM("");
}
#undef JET_LDSM
// X below is a row-major bf16 tile in shared memory with row stride ld.
// A = X[r0.., c0..] (16×16).
__device__ __forceinline__ void frag_a(Frag& a, const bf16* X, int ld, int r0, int c0, int lane) {
  ldsm<false>(a, X + (r0 + (lane & 15)) * ld + c0 + (lane >> 4) * 8);
}
// A = (X[k0.., m0..])ᵀ, i.e. A[m][k] = X[k0 + k][m0 + m]; also the C layout of that transpose as two tiles.
__device__ __forceinline__ void frag_at(Frag& a, const bf16* X, int ld, int k0, int m0, int lane) {
  ldsm<true>(a, X + (k0 + (lane & 7) + ((lane >> 4) << 3)) * ld + m0 + ((lane >> 3) & 1) * 8);
}
// B for the two n-tiles n0, n0+8 (b[0..1], b[2..3]), 16 deep from k0, with B[k][n] = X[n][k] (X holds Bᵀ).
__device__ __forceinline__ void frag_bt(Frag& b, const bf16* X, int ld, int n0, int k0, int lane) {
  ldsm<false>(b, X + (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + ((lane >> 3) & 1) * 8);
}
// Same with B[k][n] = X[k][n] (X holds B).
__device__ __forceinline__ void frag_b(Frag& b, const bf16* X, int ld, int k0, int n0, int lane) {
  ldsm<true>(b, X + (k0 + (lane & 15)) * ld + n0 + (lane >> 4) * 8);
}
__device__ __forceinline__ void mma(float (&c)[4], const Frag& a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// c[2p], c[2p+1] += a · (the two n-tiles of b).
__device__ __forceinline__ void mma2(float (&c0)[4], float (&c1)[4], const Frag& a, const Frag& b) {
  mma(c0, a, b[0], b[1]);
  mma(c1, a, b[2], b[3]);
}
__device__ __forceinline__ void st32(bf16* p, uint32_t x) { *reinterpret_cast<uint32_t*>(p) = x; }

// Σ x² over row r0 + lane / 2 of a bf16 tile of K columns (row stride ld), lanes 2r and 2r+1 each summing
// half the row with 16-byte loads; the sum in both lanes.
template <int K>
__device__ __forceinline__ float row_sumsq(const bf16* X, int ld, int r0, int lane) {
  const bf16* row = X + (r0 + (lane >> 1)) * ld + (lane & 1) * (K / 2);
  float s = 0.f;
#pragma unroll
  for (int d = 0; d < K / 2; d += 8) {
    const uint4 x = *reinterpret_cast<const uint4*>(row + d);
    const uint32_t w4[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float2 f = unpack(w4[q]);
      s += f.x * f.x + f.y * f.y;
    }
  }
  return s + __shfl_xor_sync(0xffffffffu, s, 1);
}

// Where chunk c lies: a table (packed sequences) or B equal sequences of T tokens.
struct Chunks {
  const int* tab;  // [nct] first token, [nct] length, [N + 1] first chunk of each sequence; or null
  int nct;         // chunks in all
  int T, ncs;      // without a table: tokens and chunks per sequence
  __device__ void at(int c, int& tok0, int& len) const {
    if (tab) {
      tok0 = tab[c], len = tab[nct + c];
    } else {
      const int s = c / ncs, i = c - s * ncs;
      tok0 = s * T + i * kC, len = min(kC, T - i * kC);
    }
  }
  // Index of chunk c of head h in the order [sequence, head, chunk] (no table: B equal sequences).
  __device__ size_t bhi(int c, int h, int H) const {
    return (static_cast<size_t>(c / ncs) * H + h) * ncs + c % ncs;
  }
  __device__ void of_seq(int n, int& c0, int& c1) const {
    if (tab)
      c0 = tab[2 * nct + n], c1 = tab[2 * nct + n + 1];
    else
      c0 = n * ncs, c1 = (n + 1) * ncs;
  }
};

struct Params {
  const bf16 *q, *k, *v;  // [Ttot, H, K|V]
  const float* g;         // log decay at g[t * gs_t + h * gs_h], or null (none)
  int64_t gs_t, gs_h;
  const float* beta;      // [Ttot, H] (delta)
  const float* s0;        // [N, H, K, V] or null
  bf16* w;                // [Ttot, H, K]: W = T diag(β e^Γ / |k|) K (delta)
  bf16* tb;               // [nct, H, 64, 64]: T diag(β), T = (I + A)⁻¹ (delta)
  float *rk, *gcum, *kd;  // [H, Ttot]: 1 / |k| (1 without the norm), Γ within the chunk, e^{Γ_C − Γ} / |k|
  bf16* hs;               // [nct, H, V, K]: state entering each chunk, transposed (bf16)
  bf16* vn;               // [nct, H, V, 64]: v' = U − W S (delta) or v, transposed per chunk
  bf16* o;                // [Ttot, H, V]
  float* sf;              // [N, H, K, V] final state
  // Backward recomputation only (prep_kernel<K, true, true>):
  bf16* pb;               // [nct, H, 64, 64]: P = (Q̂ K̂ᵀ ⊙ e^{Γi−Γj})₊ with Q̂ = scale q/|q|
  float* tf;              // [N, H, NC, 64, 64]: T = (I + A)⁻¹ in fp32 (Chunks::bhi order)
  float* qf;              // [H, Ttot]: scale e^Γ / |q|
  int H, V, Ttot;
  float scale;
  bool l2;
};

// ---- kernel 1: per (chunk, head) preparation, 4 warps -------------------------------------------------
template <int K>
struct PrepSmem {
  static constexpr int LK = K + 8, LF = kC + 4, LX = 3 * 16 + 4;
  static constexpr size_t ks = 0, lf = ks + kC * LK * sizeof(bf16), xf = lf + kC * LF * sizeof(float),
                          tw = xf + 16 * LX * sizeof(float), bytes = tw + kC * kLT * sizeof(bf16),
                          qs = bytes, bytes_bwd = qs + kC * LK * sizeof(bf16);  // + q (backward)
};

// BWD (backward recomputation, DELTA only): also P (bf16), T (fp32) and scale e^Γ/|q| (see Params).
template <int K, bool DELTA, bool BWD = false>
__global__ void __launch_bounds__(128) prep_kernel(Params p, Chunks m) {
  using L = PrepSmem<K>;
  constexpr int LK = L::LK, LF = L::LF, LX = L::LX;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* ks = reinterpret_cast<bf16*>(smem + L::ks);   // [64][LK] k as given
  float* lf = reinterpret_cast<float*>(smem + L::lf);  // [64][LF] A (strictly lower), then T in place
  float* xf = reinterpret_cast<float*>(smem + L::xf);  // [16][LX] Σ_k A_ik T_kj of one row block
  bf16* tw = reinterpret_cast<bf16*>(smem + L::tw);    // [64][kLT] T diag(β e^Γ / |k|)
  __shared__ float gam[kC], bet[kC], rks[kC], sw[kC], rqs[kC];
  bf16* qs = reinterpret_cast<bf16*>(smem + L::qs);    // [64][LK] q as given (BWD)
  const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H;
  const int g = lane >> 2, t = lane & 3;
  int tok0, len;
  m.at(c, tok0, len);
  const int64_t HK = static_cast<int64_t>(H) * K;
  copy_tile<K / 8, 128, kC>(ks, LK, p.k + (static_cast<size_t>(tok0) * H + h) * K, HK, len, true, p.k, tid);
  if constexpr (BWD)
    copy_tile<K / 8, 128, kC>(qs, LK, p.q + (static_cast<size_t>(tok0) * H + h) * K, HK, len, true, p.q, tid);
  cp_commit();
  if (tid < kC) {
    float gv = 0.f, bv = 0.f;
    if (tid < len) {
      if (p.g) gv = p.g[static_cast<int64_t>(tok0 + tid) * p.gs_t + h * p.gs_h];
      if constexpr (DELTA) bv = p.beta[static_cast<size_t>(tok0 + tid) * H + h];
    }
    gam[tid] = gv, bet[tid] = bv;
  }
  cp_wait<0>();
  __syncthreads();
  // 1/|k| per row (warp wp: rows 16wp..16wp+15). The products read k as given and apply the norms in fp32:
  // normalising first and rounding to bf16 would cost near-orthogonal q·k most of their digits.
  {
    const float ss = row_sumsq<K>(ks, LK, wp * 16, lane);
    const int r = wp * 16 + (lane >> 1);
    if (!(lane & 1)) rks[r] = r < len ? (p.l2 ? rsqrtf(ss + 1e-6f) : 1.f) : 0.f;
    if constexpr (BWD) {
      const float sq = row_sumsq<K>(qs, LK, wp * 16, lane);
      if (!(lane & 1)) rqs[r] = r < len ? (p.l2 ? p.scale * rsqrtf(sq + 1e-6f) : p.scale) : 0.f;
    }
  }
  if (wp == 0) {  // Γ = inclusive cumsum of the log decay over the chunk, two values per lane
    float a = gam[lane], b = gam[lane + 32];
    for (int o = 1; o < 32; o <<= 1) {
      const float ta = __shfl_up_sync(0xffffffffu, a, o), tb2 = __shfl_up_sync(0xffffffffu, b, o);
      if (lane >= o) a += ta, b += tb2;
    }
    b += __shfl_sync(0xffffffffu, a, 31);
    gam[lane] = a, gam[lane + 32] = b;
  }
  __syncthreads();
  if (tid < kC) {
    sw[tid] = bet[tid] * rks[tid] * __expf(gam[tid]);
    if (tid < len) {
      const size_t o = static_cast<size_t>(h) * p.Ttot + tok0 + tid;
      p.gcum[o] = gam[tid];
      p.rk[o] = rks[tid];
      p.kd[o] = rks[tid] * __expf(gam[len - 1] - gam[tid]);
      if constexpr (BWD) p.qf[o] = rqs[tid] * __expf(gam[tid]);
    }
  }
  if constexpr (!DELTA) return;
  if constexpr (BWD) {  // P = (Q Kᵀ ⊙ scale/|q_i| /|k_j| e^{Γi−Γj})₊: warp wp the row block wp, bf16 to pb
    float sc[8][4] = {};
    for (int kb = 0; kb < K / 16; ++kb) {
      Frag a;
      frag_a(a, qs, LK, wp * 16, kb * 16, lane);
#pragma unroll
      for (int pr = 0; pr < 4; ++pr)
        if (pr <= wp) {
          Frag b;
          frag_bt(b, ks, LK, pr * 16, kb * 16, lane);
          mma2(sc[2 * pr], sc[2 * pr + 1], a, b);
        }
    }
    bf16* pg = p.pb + (static_cast<size_t>(c) * H + h) * kC * kC;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int i = wp * 16 + g + hf * 8, j = nt * 8 + 2 * t;
        const float x0 = j <= i ? sc[nt][2 * hf] * rqs[i] * rks[j] * __expf(gam[i] - gam[j]) : 0.f;
        const float x1 = j + 1 <= i ? sc[nt][2 * hf + 1] * rqs[i] * rks[j + 1] * __expf(gam[i] - gam[j + 1]) : 0.f;
        st32(pg + i * kC + j, pack(x0, x1));
      }
  }

  {  // A = β K̂K̂ᵀ ⊙ e^{Γi−Γj}, strictly lower: warp wp the row block wp (k as given, then the norms).
    float acc[8][4] = {};
    for (int kb = 0; kb < K / 16; ++kb) {
      Frag a;
      frag_a(a, ks, LK, wp * 16, kb * 16, lane);
#pragma unroll
      for (int pr = 0; pr < 4; ++pr)
        if (pr <= wp) {
          Frag b;
          frag_bt(b, ks, LK, pr * 16, kb * 16, lane);
          mma2(acc[2 * pr], acc[2 * pr + 1], a, b);
        }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
      if (nt / 2 <= wp)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = wp * 16 + g + (e >> 1) * 8, j = nt * 8 + 2 * t + (e & 1);
          lf[i * LF + j] = j < i ? acc[nt][e] * bet[i] * rks[i] * rks[j] * __expf(gam[i] - gam[j]) : 0.f;
        }
  }
  __syncthreads();
  {  // T_bb = (I + A_bb)⁻¹ of the diagonal 16×16 blocks: warp wp block wp, lane c column c (registers).
    const int col = lane & 15, r0 = wp * 16;
    float x[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      float s = i == col ? 1.f : 0.f;
#pragma unroll
      for (int j = 0; j < i; ++j) s -= lf[(r0 + i) * LF + r0 + j] * x[j];
      x[i] = s;
    }
    __syncwarp();
    if (lane < 16)
#pragma unroll
      for (int i = 0; i < 16; ++i) lf[(r0 + i) * LF + r0 + col] = x[i];
  }
  __syncthreads();
  // Row blocks below: T_ij = −T_ii Σ_{k=j}^{i−1} A_ik T_kj (blocks of 16), row block i after the rows above it;
  // a thread computes 4 adjacent columns of one row (16-byte shared loads).
  for (int ib = 1; ib < 4; ++ib) {
    for (int e = tid; e < ib * 64; e += 128) {
      const int jb = e >> 6, r = (e >> 2) & 15, c4 = jb * 16 + (e & 3) * 4;
      const float* arow = lf + (ib * 16 + r) * LF;
      float4 x = {0.f, 0.f, 0.f, 0.f};
      for (int k = jb * 16; k < ib * 16; ++k) {
        const float a = arow[k];
        const float4 y = *reinterpret_cast<const float4*>(lf + k * LF + c4);
        x.x += a * y.x, x.y += a * y.y, x.z += a * y.z, x.w += a * y.w;
      }
      *reinterpret_cast<float4*>(xf + r * LX + c4) = x;
    }
    __syncthreads();
    for (int e = tid; e < ib * 64; e += 128) {
      const int jb = e >> 6, r = (e >> 2) & 15, c4 = jb * 16 + (e & 3) * 4;
      const float* trow = lf + (ib * 16 + r) * LF + ib * 16;
      float4 x = {0.f, 0.f, 0.f, 0.f};
      for (int k = 0; k <= r; ++k) {
        const float a = trow[k];
        const float4 y = *reinterpret_cast<const float4*>(xf + k * LX + c4);
        x.x -= a * y.x, x.y -= a * y.y, x.z -= a * y.z, x.w -= a * y.w;
      }
      *reinterpret_cast<float4*>(lf + (ib * 16 + r) * LF + c4) = x;
    }
    __syncthreads();
  }
  // T diag(β) to global (for U = T diag(β) V in the state kernel), T diag(β e^Γ / |k|) to shared (bf16).
  bf16* tbg = p.tb + (static_cast<size_t>(c) * H + h) * kC * kC;
  for (int e = tid; e < kC * kC / 2; e += 128) {
    const int i = e >> 5, j = (e & 31) * 2;
    const float t0 = j <= i ? lf[i * LF + j] : 0.f, t1 = j + 1 <= i ? lf[i * LF + j + 1] : 0.f;
    st32(tbg + i * kC + j, pack(t0 * bet[j], t1 * bet[j + 1]));
    st32(tw + i * kLT + j, pack(t0 * sw[j], t1 * sw[j + 1]));
    if constexpr (BWD) *reinterpret_cast<float2*>(p.tf + m.bhi(c, h, H) * kC * kC + i * kC + j) = make_float2(t0, t1);
  }
  __syncthreads();
  {  // W = T diag(β e^Γ / |k|) K: warp wp the rows 16wp..16wp+15 (T is lower: column blocks ≤ wp).
    float acc[K / 8][4] = {};
#pragma unroll
    for (int jb = 0; jb < 4; ++jb)
      if (jb <= wp) {
        Frag a;
        frag_a(a, tw, kLT, wp * 16, jb * 16, lane);
#pragma unroll
        for (int pr = 0; pr < K / 16; ++pr) {
          Frag b;
          frag_b(b, ks, LK, jb * 16, pr * 16, lane);
          mma2(acc[2 * pr], acc[2 * pr + 1], a, b);
        }
      }
    const int i0 = wp * 16 + g, i1 = i0 + 8;
#pragma unroll
    for (int nt = 0; nt < K / 8; ++nt) {
      const int d = nt * 8 + 2 * t;
      if (i0 < len) st32(p.w + (static_cast<size_t>(tok0 + i0) * H + h) * K + d, pack(acc[nt][0], acc[nt][1]));
      if (i1 < len) st32(p.w + (static_cast<size_t>(tok0 + i1) * H + h) * K + d, pack(acc[nt][2], acc[nt][3]));
    }
  }
}

// ---- kernel 2: the sequential pass over chunks, one block per (sequence, head, 16·NW value columns) -----
// Each of the NW compute warps owns 16 value columns and keeps Sᵀ (16 × K, fp32) in accumulator registers;
// they share the chunk's k, W, T tiles, which one more warp (the producer) fetches ST − 1 chunks ahead
// (cp.async ring of ST stages, one block barrier a chunk), so that the compute warps issue no copies.
template <int K, int NW, int ST, bool DELTA>
struct StateSmem {
  static constexpr int LK = K + 8, BV = 16 * NW, LV = BV + 8;
  static constexpr size_t ks = 0, ws = ks + kC * LK * sizeof(bf16), vs = ws + (DELTA ? kC * LK * sizeof(bf16) : 0),
                          ts = vs + kC * LV * sizeof(bf16), kd = ts + (DELTA ? kC * kLT * sizeof(bf16) : 0),
                          stage = kd + (kC + 4) * sizeof(float), bytes = ST * stage;
};

template <int K, int NW, int ST, bool DELTA>
__global__ void __launch_bounds__(32 * (NW + 1)) state_kernel(Params p, Chunks m) {
  using L = StateSmem<K, NW, ST, DELTA>;
  constexpr int LK = L::LK, BV = L::BV, LV = L::LV, NT = K / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const int n = blockIdx.z, h = blockIdx.y, vb0 = blockIdx.x * BV;
  const int tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H, V = p.V;
  const int g = lane >> 2, t = lane & 3, va0 = vb0 + wp * 16 + g, va1 = va0 + 8;  // this lane's two columns
  int c0, c1;
  m.of_seq(n, c0, c1);

  // Stage `buf` receives chunk c: k, W rows [64][LK], v columns [64][LV], T diag(β) [64][kLT], e^{Γ_C−Γ}/|k|
  // [64] and Γ_C. Producer warp only (lane = its thread).
  auto issue = [&](int c, int buf) {
    unsigned char* sm = smem + buf * L::stage;
    float* kd = reinterpret_cast<float*>(sm + L::kd);
    int tok0, len;
    m.at(c, tok0, len);
    const size_t row0 = static_cast<size_t>(tok0) * H + h;
    const int64_t HK = static_cast<int64_t>(H) * K, HV = static_cast<int64_t>(H) * V;
    copy_tile<K / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ks), LK, p.k + row0 * K, HK, len, true, p.k, lane);
    if constexpr (DELTA)
      copy_tile<K / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ws), LK, p.w + row0 * K, HK, len, true, p.w, lane);
    copy_tile<BV / 8, 32, kC>(reinterpret_cast<bf16*>(sm + L::vs), LV, p.v + row0 * V + vb0, HV, len,
                              vb0 + (lane % (BV / 8)) * 8 < V, p.v, lane);
    if constexpr (DELTA)
      copy_tile<8, 32, kC>(reinterpret_cast<bf16*>(sm + L::ts), kLT, p.tb + (static_cast<size_t>(c) * H + h) * kC * kC,
                           kC, kC, true, p.tb, lane);
    const size_t hrow = static_cast<size_t>(h) * p.Ttot + tok0;
    cp4(kd + lane, p.kd + hrow + (lane < len ? lane : 0), lane < len);
    cp4(kd + lane + 32, p.kd + hrow + (lane + 32 < len ? lane + 32 : 0), lane + 32 < len);
    if (lane == 0) cp4(kd + kC, p.gcum + hrow + len - 1, true);
  };
  const bool producer = wp == NW;
  if (producer) {
#pragma unroll
    for (int s = 0; s < ST - 1; ++s) {
      if (c0 + s < c1) issue(c0 + s, s);
      cp_commit();
    }
    cp_wait<ST - 2>();  // chunk c0 landed
  }

  float S[NT][4];  // Sᵀ: row g / g+8 = columns va0 / va1, tile nt = state rows 8nt..8nt+7
  const size_t sbase = (static_cast<size_t>(n) * H + h) * K * V;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int v = e < 2 ? va0 : va1, r = nt * 8 + 2 * t + (e & 1);
      S[nt][e] = p.s0 && !producer && v < V ? p.s0[sbase + static_cast<size_t>(r) * V + v] : 0.f;
    }

  for (int c = c0; c < c1; ++c) {
    const int it = c - c0;
    __syncthreads();  // chunk c landed and is visible; every warp is done with chunk c − 1's stage
    if (producer) {   // refill chunk c − 1's stage with chunk c + ST − 1, then wait for chunk c + 1
      if (c + ST - 1 < c1) issue(c + ST - 1, (it + ST - 1) % ST);
      cp_commit();
      cp_wait<ST - 2>();
      continue;
    }
    unsigned char* sm = smem + (it % ST) * L::stage;
    const bf16 *ks = reinterpret_cast<const bf16*>(sm + L::ks), *ws = reinterpret_cast<const bf16*>(sm + L::ws);
    const bf16 *vs = reinterpret_cast<const bf16*>(sm + L::vs), *ts = reinterpret_cast<const bf16*>(sm + L::ts);
    const float* kd = reinterpret_cast<const float*>(sm + L::kd);

    // v'ᵀ (16 columns × 64 tokens) = Vᵀ (T diag(β))ᵀ − Sᵀ Wᵀ (delta) or Vᵀ. On the way, the state entering
    // chunk c goes to hs (bf16, [V][K]) for the output kernel; −Sᵀ in bf16 is the A operand of Sᵀ Wᵀ.
    bf16* hsg = p.hs + (static_cast<size_t>(c) * H + h) * V * K;
    float u[8][4] = {};
#pragma unroll
    for (int jb = 0; jb < 4; ++jb) {
      Frag a;
      frag_at(a, vs, LV, jb * 16, wp * 16, lane);
      if constexpr (DELTA) {
#pragma unroll
        for (int pr = jb; pr < 4; ++pr) {  // T is lower: token block pr takes blocks jb ≤ pr
          Frag b;
          frag_bt(b, ts, kLT, pr * 16, jb * 16, lane);
          mma2(u[2 * pr], u[2 * pr + 1], a, b);
        }
      } else {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const float2 f = unpack(a[q]);
          u[2 * jb + (q >> 1)][(q & 1) * 2] = f.x, u[2 * jb + (q >> 1)][(q & 1) * 2 + 1] = f.y;
        }
      }
    }
#pragma unroll
    for (int kb = 0; kb < K / 16; ++kb) {
      const uint32_t x0 = pack(S[2 * kb][0], S[2 * kb][1]), x1 = pack(S[2 * kb][2], S[2 * kb][3]);
      const uint32_t x2 = pack(S[2 * kb + 1][0], S[2 * kb + 1][1]), x3 = pack(S[2 * kb + 1][2], S[2 * kb + 1][3]);
      if (va0 < V) {
        st32(hsg + static_cast<size_t>(va0) * K + kb * 16 + 2 * t, x0);
        st32(hsg + static_cast<size_t>(va0) * K + kb * 16 + 8 + 2 * t, x2);
      }
      if (va1 < V) {
        st32(hsg + static_cast<size_t>(va1) * K + kb * 16 + 2 * t, x1);
        st32(hsg + static_cast<size_t>(va1) * K + kb * 16 + 8 + 2 * t, x3);
      }
      if constexpr (DELTA) {
        const Frag sa = {x0 ^ 0x80008000u, x1 ^ 0x80008000u, x2 ^ 0x80008000u, x3 ^ 0x80008000u};  // −Sᵀ
#pragma unroll
        for (int pr = 0; pr < 4; ++pr) {
          Frag b;
          frag_bt(b, ws, LK, pr * 16, kb * 16, lane);
          mma2(u[2 * pr], u[2 * pr + 1], sa, b);
        }
      }
    }
    // v' in bf16 to vn ([V][64]), and v' e^{Γ_C−Γ_i}/|k_i| (bf16) as A fragments of the update.
    bf16* vng = p.vn + (static_cast<size_t>(c) * H + h) * V * kC;
    Frag va[4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const int i = nt * 8 + 2 * t;
      const uint32_t lo = pack(u[nt][0], u[nt][1]), hi = pack(u[nt][2], u[nt][3]);
      if (va0 < V) st32(vng + static_cast<size_t>(va0) * kC + i, lo);
      if (va1 < V) st32(vng + static_cast<size_t>(va1) * kC + i, hi);
      const float d0 = kd[i], d1 = kd[i + 1];
      const float2 fl = unpack(lo), fh = unpack(hi);
      va[nt >> 1][(nt & 1) * 2] = pack(fl.x * d0, fl.y * d1);
      va[nt >> 1][(nt & 1) * 2 + 1] = pack(fh.x * d0, fh.y * d1);
    }
    // Sᵀ ← e^{Γ_C} Sᵀ + (e^{Γ_C−Γ} v' / |k|)ᵀ K.
    const float dec = __expf(kd[kC]);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) S[nt][e] *= dec;
#pragma unroll
    for (int jb = 0; jb < 4; ++jb)
#pragma unroll
      for (int pr = 0; pr < K / 16; ++pr) {
        Frag b;
        frag_b(b, ks, LK, jb * 16, pr * 16, lane);
        mma2(S[2 * pr], S[2 * pr + 1], va[jb], b);
      }
  }
  if (producer) return;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int v = e < 2 ? va0 : va1, r = nt * 8 + 2 * t + (e & 1);
      if (v < V) p.sf[sbase + static_cast<size_t>(r) * V + v] = S[nt][e];
    }
}


// Raises a kernel's dynamic shared-memory limit where dynamic plus (up to 8 KB of) static shared memory
// could pass the default 48 KB.
template <typename Kern>
inline void set_smem(Kern kern, size_t bytes) {
  if (bytes > 40 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// State kernel shape: 16·NW value columns (NW compute warps and a producer warp) per block; ST pipeline
// stages: 3 for NW = 2, else 2 (two blocks of NW = 4 fit an SM). Wider blocks load each chunk's K, Q, g once
// for more columns, so they pay when the grid still fills the GPU: the widest NW whose grid gives >= 0.7
// blocks per SM (2B shapes on an H100: 8 at B = 8, GDN op 1.31 ms vs 1.52 ms at NW = 2; 2 at B = 1).
// JET_LA_STATE_NW = 2|4|8 forces one (the shape test and benchmarks).
inline int state_warps(int V, int H, int N) {
  if (const char* e = std::getenv("JET_LA_STATE_NW")) {
    const int nw = std::atoi(e);
    if (nw == 2 || nw == 4 || nw == 8) return nw;
  }
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  for (int nw : {8, 4}) {
    const int64_t blocks = static_cast<int64_t>((V + 16 * nw - 1) / (16 * nw)) * H * N;
    if (10 * blocks >= 7 * sms) return nw;
  }
  return 2;
}

// <env>=1: CUDA events between a path's kernels (mark() before the first and after each), the split printed to
// stderr as "<label> kernels ms: <name> <ms> ..." when the timer goes out of scope (synchronising).
template <int N>
class KernelTimer {
 public:
  KernelTimer(cudaStream_t s, const char* env, const char* label, const std::array<const char*, N>& names)
      : on_(std::getenv(env) != nullptr), stream_(s), label_(label), names_(names) {
    if (on_)
      for (auto& e : ev_) C10_CUDA_CHECK(cudaEventCreate(&e));
  }
  void mark() {
    if (on_) C10_CUDA_CHECK(cudaEventRecord(ev_[n_++], stream_));
  }
  ~KernelTimer() {
    if (!on_) return;
    cudaEventSynchronize(ev_[n_ - 1]);
    std::fprintf(stderr, "%s kernels ms:", label_);
    for (int i = 0; i + 1 < n_; ++i) {
      float ms = 0;
      cudaEventElapsedTime(&ms, ev_[i], ev_[i + 1]);
      std::fprintf(stderr, " %s %.4f", names_[i], ms);
    }
    std::fprintf(stderr, "\n");
    for (auto& e : ev_) cudaEventDestroy(e);
  }

 private:
  bool on_;
  cudaStream_t stream_;
  const char* label_;
  std::array<const char*, N> names_;
  cudaEvent_t ev_[N + 1];
  int n_ = 0;
};

}  // namespace jet::ops::la_chunk
