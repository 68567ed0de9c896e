// CUDA chunked forward of the linear-attention family (scalar decay × additive/delta), see
// linear_attention_chunk_cuda.h for the kernel split and README.md for the math. Chunk C = 64.
// Layout: every sequence is a run of tokens of one packed [Ttot, H, ·] buffer (B sequences of length
// T are Ttot = B·T with sequence b at b·T); a chunk is up to 64 tokens of one sequence. Tokens past a
// chunk's length are zero rows in shared memory (k = v = β = 0, log decay 0: no effect on S or on the
// real outputs). Shared-memory rows are padded by 8 bf16 / 4 fp32 so that WMMA loads stay 32-byte
// aligned and rows fall on different banks.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "ops/linear_attention/linear_attention_chunk_cuda.h"

namespace jet::ops {
namespace {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;
constexpr int kC = 64;           // chunk length
constexpr int kLT = kC + 8;      // bf16 row stride of a 64-column tile
constexpr int kLF = kC + 4;      // fp32 row stride of a 64-column tile

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

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
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

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
  __device__ void of_seq(int n, int& c0, int& c1) const {
    if (tab)
      c0 = tab[2 * nct + n], c1 = tab[2 * nct + n + 1];
    else
      c0 = n * ncs, c1 = (n + 1) * ncs;
  }
};

struct Params {
  const bf16 *q, *k, *v;     // [Ttot, H, K|V]
  const float* g;            // log decay at g[t * gs_t + h * gs_h], or null (none)
  int64_t gs_t, gs_h;
  const float* beta;         // [Ttot, H] (delta)
  const float* s0;           // [N, H, K, V] or null
  bf16* w;                   // [Ttot, H, K]: W (delta)
  float *rq, *rk;            // [H, Ttot]: scale / |q| and 1 / |k| (scale and 1 without the L2 norm)
  bf16* u;                   // [Ttot, H, V]: U (delta), overwritten by v' = U − W S
  float* gcum;               // [H, Ttot]: Γ within the chunk
  bf16* hs;                  // [nct, H, K, V]: state entering each chunk
  bf16* o;                   // [Ttot, H, V]
  float* sf;                 // [N, H, K, V] final state
  int H, V, Ttot;
  float scale;
  bool l2;
};

// acc += A · B over KS steps of 16 along the inner dimension: A a 16-row block (row-major, row stride
// lda); B a 16-column block, the bf16 fragment layout FB (row-major: step ldb·16; col-major, i.e. the
// transpose of a row-major block: step 16).
template <int KS, typename FB>
__device__ __forceinline__ void mma_rows(Acc& acc, const bf16* a, int lda, const bf16* b, int ldb, int b_step) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    FragA fa;
    FB fb;
    wmma::load_matrix_sync(fa, a + kk * 16, lda);
    wmma::load_matrix_sync(fb, b + kk * b_step, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// acc[cb] += A · B[:, 16cb..16cb+16) for the four 16-column blocks of a 64-column B: A a 16-row block
// (row-major, row stride lda) over nk inner blocks of 16, B row-major (row stride ldb).
__device__ __forceinline__ void mma_rows_x4(Acc (&acc)[4], const bf16* a, int lda, const bf16* b, int ldb, int nk) {
  for (int kk = 0; kk < nk; ++kk) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + kk * 16, lda);
    for (int cb = 0; cb < 4; ++cb) {
      FragB fb;
      wmma::load_matrix_sync(fb, b + kk * 16 * ldb + cb * 16, ldb);
      wmma::mma_sync(acc[cb], fa, fb, acc[cb]);
    }
  }
}

// C[64×64] (fp32, row stride kLF) = A · B for A a 64×64 lower-triangular bf16 tile (row stride kLT) and
// B a 64×64 bf16 tile; warp wp writes row block wp (it skips the zero blocks of A above the diagonal).
__device__ __forceinline__ void lower_times_tile(const bf16* A, const bf16* Bm, float* Cm, int wp) {
  Acc acc[4];
  for (int cb = 0; cb < 4; ++cb) wmma::fill_fragment(acc[cb], 0.f);
  mma_rows_x4(acc, A + wp * 16 * kLT, kLT, Bm, kLT, wp + 1);
  for (int cb = 0; cb < 4; ++cb) wmma::store_matrix_sync(Cm + wp * 16 * kLF + cb * 16, acc[cb], kLF, wmma::mem_row_major);
}

// ---- kernel 1: per (chunk, head) preparation, 4 warps -------------------------------------------------
template <int K, bool DELTA>
__global__ void __launch_bounds__(128) prep_kernel(Params p, Chunks m) {
  constexpr int LK = K + 8;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* kb = reinterpret_cast<bf16*>(smem);  // [64][LK] k as given (bf16, exact)
  bf16* tb = kb + kC * LK;                   // [64][kLT] T in bf16
  bf16* rb = tb + kC * kLT;                  // [64][kLT] right-hand side tile
  float* af = reinterpret_cast<float*>(rb + kC * kLT);  // [64][kLF] A, then the product stage
  float* tf = af + kC * kLF;                            // [64][kLF] T in fp32
  __shared__ float gam[kC], bet[kC], rks[kC];
  const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, wp = tid >> 5;
  const int H = p.H;
  int tok0, len;
  m.at(c, tok0, len);

  // Row norms of q and k (one warp per row, a warp sum). The matmuls read q and k as given (bf16 values
  // are exact) and apply the norms in fp32 afterwards: normalising first and rounding to bf16 would make
  // near-orthogonal q·k lose most of their digits.
  for (int r = wp; r < kC; r += 4) {
    const bool ok = r < len;
    const size_t row = (static_cast<size_t>(tok0 + r) * H + h) * K;
    bf16 xk[K / 32];
    float nq = 0.f, nk = 0.f;
#pragma unroll
    for (int i = 0; i < K / 32; ++i) {
      const float xq = ok ? __bfloat162float(p.q[row + lane + 32 * i]) : 0.f;
      xk[i] = ok ? p.k[row + lane + 32 * i] : __float2bfloat16(0.f);
      const float x = __bfloat162float(xk[i]);
      nq += xq * xq, nk += x * x;
    }
    nq = warp_sum(nq), nk = warp_sum(nk);
    const float sq = p.l2 ? rsqrtf(nq + 1e-6f) * p.scale : p.scale, sk = p.l2 ? rsqrtf(nk + 1e-6f) : 1.f;
    if (lane == 0) {
      rks[r] = ok ? sk : 0.f;
      if (ok) {
        p.rq[static_cast<size_t>(h) * p.Ttot + tok0 + r] = sq;
        p.rk[static_cast<size_t>(h) * p.Ttot + tok0 + r] = sk;
      }
    }
    if constexpr (DELTA) {
#pragma unroll
      for (int i = 0; i < K / 32; ++i) kb[r * LK + lane + 32 * i] = xk[i];
    }
  }
  // Γ = inclusive cumsum of the log decay over the chunk (one warp, two values per lane), and β.
  if (tid < kC) {
    float gv = 0.f, bv = 0.f;
    if (tid < len) {
      if (p.g) gv = p.g[static_cast<int64_t>(tok0 + tid) * p.gs_t + h * p.gs_h];
      if constexpr (DELTA) bv = p.beta[static_cast<size_t>(tok0 + tid) * H + h];
    }
    gam[tid] = gv, bet[tid] = bv;
  }
  __syncthreads();
  if (wp == 0) {
    float a = gam[lane], b = gam[lane + 32];
    for (int o = 1; o < 32; o <<= 1) {
      const float ta = __shfl_up_sync(0xffffffffu, a, o), tb2 = __shfl_up_sync(0xffffffffu, b, o);
      if (lane >= o) a += ta, b += tb2;
    }
    b += __shfl_sync(0xffffffffu, a, 31);
    gam[lane] = a, gam[lane + 32] = b;
  }
  __syncthreads();
  if (tid < len) p.gcum[static_cast<size_t>(h) * p.Ttot + tok0 + tid] = gam[tid];
  if constexpr (!DELTA) return;

  // A = K Kᵀ on the blocks at or below the diagonal (warp wp: row block wp).
  for (int jb = 0; jb <= wp; ++jb) {
    Acc acc;
    wmma::fill_fragment(acc, 0.f);
    mma_rows<K / 16, FragBt>(acc, kb + wp * 16 * LK, LK, kb + jb * 16 * LK, LK, 16);
    wmma::store_matrix_sync(af + wp * 16 * kLF + jb * 16, acc, kLF, wmma::mem_row_major);
  }
  __syncthreads();
  for (int e = tid; e < kC * kC; e += 128) {
    const int i = e / kC, j = e % kC;
    if (j < i) af[i * kLF + j] *= bet[i] * rks[i] * rks[j] * __expf(gam[i] - gam[j]);
  }
  __syncthreads();
  // T = (I + A)⁻¹, unit lower triangular: T_i = e_i − Σ_{j<i} A_ij T_j, row by row; thread c owns column c.
  for (int i = 0; i < kC; ++i) {
    if (tid < kC) {
      float t = tid == i ? 1.f : 0.f;
      if (tid < i) {
        float s = 0.f;
        for (int j = tid; j < i; ++j) s += af[i * kLF + j] * tf[j * kLF + tid];
        t = -s;
      }
      tf[i * kLF + tid] = t;
    }
    __syncthreads();
  }
  for (int e = tid; e < kC * kC; e += 128) {
    const int i = e / kC, j = e % kC;
    tb[i * kLT + j] = __float2bfloat16(tf[i * kLF + j]);
  }
  // W = T (β e^Γ ⊙ K) and U = T (β V), 64 columns at a time (af is now the product stage).
  const int tiles_k = (K + kC - 1) / kC, tiles = tiles_k + (p.V + kC - 1) / kC;
  for (int t = 0; t < tiles; ++t) {
    const bool is_w = t < tiles_k;
    const int c0 = (is_w ? t : t - tiles_k) * kC, width = is_w ? K : p.V;
    __syncthreads();  // tb written / previous product stored
    for (int e = tid; e < kC * kC; e += 128) {
      const int i = e / kC, cc = e % kC, d = c0 + cc;
      float x = 0.f;
      if (d < width && i < len)
        x = is_w ? bet[i] * rks[i] * __expf(gam[i]) * __bfloat162float(kb[i * LK + d])
                 : bet[i] * __bfloat162float(p.v[(static_cast<size_t>(tok0 + i) * H + h) * p.V + d]);
      rb[i * kLT + cc] = __float2bfloat16(x);
    }
    __syncthreads();
    lower_times_tile(tb, rb, af, wp);
    __syncthreads();
    for (int e = tid; e < kC * kC; e += 128) {
      const int i = e / kC, cc = e % kC, d = c0 + cc;
      if (i < len && d < width) {
        const bf16 x = __float2bfloat16(af[i * kLF + cc]);
        if (is_w)
          p.w[(static_cast<size_t>(tok0 + i) * H + h) * K + d] = x;
        else
          p.u[(static_cast<size_t>(tok0 + i) * H + h) * p.V + d] = x;
      }
    }
  }
}

template <int K>
constexpr size_t prep_smem(bool delta) {
  return delta ? (kC * (K + 8) + 2 * kC * kLT) * sizeof(bf16) + 2 * kC * kLF * sizeof(float) : 0;
}

// ---- kernel 2: the sequential pass over chunks, one block per (sequence, head, 16·NW columns) -----------
template <int K, int NW>
struct StateSmem {
  static constexpr int LK = K + 8, BV = 16 * NW, LV = BV + 8, LS = BV + 4;
  static constexpr int SR = K > kC ? K : kC;  // stage rows
  static constexpr size_t wb = 0, kb = wb + 2 * kC * LK * sizeof(bf16), ub = kb + 2 * kC * LK * sizeof(bf16),
                          gm = ub + 2 * kC * LV * sizeof(bf16), rk = gm + 2 * kC * sizeof(float),
                          sb = rk + 2 * kC * sizeof(float),
                          st = sb + K * LV * sizeof(bf16), bytes = st + SR * LS * sizeof(float);
};

template <int K, int NW, bool DELTA>
__global__ void __launch_bounds__(32 * NW) state_kernel(Params p, Chunks m) {
  using L = StateSmem<K, NW>;
  constexpr int LK = L::LK, BV = L::BV, LV = L::LV, LS = L::LS, KR = K / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* wb = reinterpret_cast<bf16*>(smem + L::wb);  // [2][64][LK] W (delta)
  bf16* kb = reinterpret_cast<bf16*>(smem + L::kb);  // [2][64][LK] k as given
  bf16* ub = reinterpret_cast<bf16*>(smem + L::ub);  // [2][64][LV] U (delta) or v, then e^{Γ_C−Γ} v'
  float* gm = reinterpret_cast<float*>(smem + L::gm);  // [2][64] Γ
  float* rkm = reinterpret_cast<float*>(smem + L::rk);  // [2][64] 1 / |k|
  bf16* sb = reinterpret_cast<bf16*>(smem + L::sb);  // [K][LV] S in bf16
  float* st = reinterpret_cast<float*>(smem + L::st);  // [SR][LS] fp32 stage
  const int n = blockIdx.z, h = blockIdx.y, v0 = blockIdx.x * BV;
  const int tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H, V = p.V;
  const bf16* vsrc = DELTA ? p.u : p.v;
  int c0, c1;
  m.of_seq(n, c0, c1);

  auto issue = [&](int c, int buf) {
    int tok0, len;
    m.at(c, tok0, len);
    for (int e = tid; e < kC * (K / 8); e += 32 * NW) {
      const int i = e / (K / 8), d = (e % (K / 8)) * 8;
      const bool ok = i < len;
      const size_t off = ok ? (static_cast<size_t>(tok0 + i) * H + h) * K + d : 0;
      cp16(kb + (buf * kC + i) * LK + d, p.k + off, ok);
      if constexpr (DELTA) cp16(wb + (buf * kC + i) * LK + d, p.w + off, ok);
    }
    for (int e = tid; e < kC * (BV / 8); e += 32 * NW) {
      const int i = e / (BV / 8), cc = (e % (BV / 8)) * 8;
      const bool ok = i < len && v0 + cc < V;
      cp16(ub + (buf * kC + i) * LV + cc, vsrc + (ok ? (static_cast<size_t>(tok0 + i) * H + h) * V + v0 + cc : 0), ok);
    }
    for (int i = tid; i < kC; i += 32 * NW) {
      const size_t off = i < len ? static_cast<size_t>(h) * p.Ttot + tok0 + i : 0;
      cp4(gm + buf * kC + i, p.gcum + off, i < len);
      cp4(rkm + buf * kC + i, p.rk + off, i < len);
    }
  };
  if (c0 < c1) issue(c0, 0);
  cp_commit();

  Acc S[KR];
  const size_t sbase = (static_cast<size_t>(n) * H + h) * K * V;
  for (int e = tid; e < K * BV; e += 32 * NW) {
    const int r = e / BV, cc = e % BV;
    st[r * LS + cc] = p.s0 && v0 + cc < V ? p.s0[sbase + static_cast<size_t>(r) * V + v0 + cc] : 0.f;
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < KR; ++r) wmma::load_matrix_sync(S[r], st + r * 16 * LS + wp * 16, LS, wmma::mem_row_major);
  __syncwarp();

  for (int c = c0; c < c1; ++c) {
    const int buf = (c - c0) & 1;
    if (c + 1 < c1) issue(c + 1, buf ^ 1);
    cp_commit();
    int tok0, len;
    m.at(c, tok0, len);
    // The state entering chunk c: to the output kernel (bf16) and to sb for W S. Each warp owns its
    // 16 columns of st, sb and ub, so warps only meet at the block barriers around the copies.
#pragma unroll
    for (int r = 0; r < KR; ++r) wmma::store_matrix_sync(st + r * 16 * LS + wp * 16, S[r], LS, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < K * 16; e += 32) {
      const int r = e >> 4, col = wp * 16 + (e & 15);
      const bf16 x = __float2bfloat16(st[r * LS + col]);
      sb[r * LV + col] = x;
      if (v0 + col < V) p.hs[((static_cast<size_t>(c) * H + h) * K + r) * V + v0 + col] = x;
    }
    cp_wait<1>();
    __syncthreads();
    const bf16* W = wb + buf * kC * LK;
    const bf16* Kc = kb + buf * kC * LK;
    bf16* U = ub + buf * kC * LV;
    const float* G = gm + buf * kC;
    const float* RK = rkm + buf * kC;
    const float glast = G[len - 1];
    if constexpr (DELTA) {  // W S for this warp's columns, into st
      for (int rb = 0; rb < 4; ++rb) {
        Acc acc;
        wmma::fill_fragment(acc, 0.f);
        mma_rows<KR, FragB>(acc, W + rb * 16 * LK, LK, sb + wp * 16, LV, 16 * LV);
        wmma::store_matrix_sync(st + rb * 16 * LS + wp * 16, acc, LS, wmma::mem_row_major);
      }
      __syncwarp();
    }
    // v' = U − W S (delta) or v: v' to global for the output kernel, e^{Γ_C−Γ_i} v'_i / |k_i| (bf16) for
    // the update with k as given.
    for (int e = lane; e < kC * 16; e += 32) {
      const int i = e >> 4, col = wp * 16 + (e & 15);
      float x = 0.f;
      if (i < len) {
        x = __bfloat162float(U[i * LV + col]);
        if constexpr (DELTA) {
          x -= st[i * LS + col];
          const bf16 xb = __float2bfloat16(x);
          if (v0 + col < V) p.u[(static_cast<size_t>(tok0 + i) * H + h) * V + v0 + col] = xb;
          x = __bfloat162float(xb);
        }
        x *= RK[i] * __expf(glast - G[i]);
      }
      U[i * LV + col] = __float2bfloat16(x);
    }
    __syncwarp();
    // S ← e^{Γ_C} S + K̂ᵀ (e^{Γ_C−Γ} ⊙ v'), K̂ = diag(1/|k|) K.
    const float dec = __expf(glast);
#pragma unroll
    for (int r = 0; r < KR; ++r)
      for (int t = 0; t < S[r].num_elements; ++t) S[r].x[t] *= dec;
#pragma unroll
    for (int kk = 0; kk < kC / 16; ++kk) {
      FragB b;
      wmma::load_matrix_sync(b, U + kk * 16 * LV + wp * 16, LV);
#pragma unroll
      for (int r = 0; r < KR; ++r) {
        FragAt a;
        wmma::load_matrix_sync(a, Kc + kk * 16 * LK + r * 16, LK);
        wmma::mma_sync(S[r], a, b, S[r]);
      }
    }
    __syncthreads();  // this buffer is refilled by the next iteration's issue
  }
  cp_wait<0>();
#pragma unroll
  for (int r = 0; r < KR; ++r) wmma::store_matrix_sync(st + r * 16 * LS + wp * 16, S[r], LS, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < K * 16; e += 32) {
    const int r = e >> 4, col = wp * 16 + (e & 15);
    if (v0 + col < V) p.sf[sbase + static_cast<size_t>(r) * V + v0 + col] = st[r * LS + col];
  }
}

// ---- kernel 3: outputs, one block per (chunk, head, 64 value columns), 4 warps (warp = 16 rows) --------
template <int K>
struct OutSmem {
  static constexpr int LK = K + 8;
  static constexpr size_t qb = 0, kb = qb + kC * LK * sizeof(bf16), hb = kb + kC * LK * sizeof(bf16),
                          vb = hb + K * kLT * sizeof(bf16), pb = vb + kC * kLT * sizeof(bf16),
                          pf = pb + kC * kLT * sizeof(bf16), bytes = pf + kC * kLF * sizeof(float);
};

template <int K, bool DELTA>
__global__ void __launch_bounds__(128) output_kernel(Params p, Chunks m) {
  using L = OutSmem<K>;
  constexpr int LK = L::LK, KR = K / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* qb = reinterpret_cast<bf16*>(smem + L::qb);  // [64][LK]
  bf16* kb = reinterpret_cast<bf16*>(smem + L::kb);  // [64][LK]
  bf16* hb = reinterpret_cast<bf16*>(smem + L::hb);  // [K][kLT] state entering the chunk
  bf16* vb = reinterpret_cast<bf16*>(smem + L::vb);  // [64][kLT] v'
  bf16* pb = reinterpret_cast<bf16*>(smem + L::pb);  // [64][kLT] masked decayed scores
  float* pf = reinterpret_cast<float*>(smem + L::pf);  // [64][kLF] fp32 stage
  __shared__ float gam[kC], rqs[kC], rks[kC];
  const int c = blockIdx.x, h = blockIdx.y, v0 = blockIdx.z * kC;
  const int tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H, V = p.V;
  const bf16* vsrc = DELTA ? p.u : p.v;
  int tok0, len;
  m.at(c, tok0, len);
  for (int e = tid; e < kC * (K / 8); e += 128) {
    const int i = e / (K / 8), d = (e % (K / 8)) * 8;
    const bool ok = i < len;
    const size_t off = ok ? (static_cast<size_t>(tok0 + i) * H + h) * K + d : 0;
    cp16(qb + i * LK + d, p.q + off, ok);
    cp16(kb + i * LK + d, p.k + off, ok);
  }
  for (int e = tid; e < K * (kC / 8); e += 128) {
    const int r = e / (kC / 8), cc = (e % (kC / 8)) * 8;
    const bool ok = v0 + cc < V;
    cp16(hb + r * kLT + cc, p.hs + (ok ? ((static_cast<size_t>(c) * H + h) * K + r) * V + v0 + cc : 0), ok);
  }
  for (int e = tid; e < kC * (kC / 8); e += 128) {
    const int i = e / (kC / 8), cc = (e % (kC / 8)) * 8;
    const bool ok = i < len && v0 + cc < V;
    cp16(vb + i * kLT + cc, vsrc + (ok ? (static_cast<size_t>(tok0 + i) * H + h) * V + v0 + cc : 0), ok);
  }
  cp_commit();
  if (tid < kC) {
    const bool ok = tid < len;
    const size_t off = static_cast<size_t>(h) * p.Ttot + tok0 + tid;
    gam[tid] = ok ? p.gcum[off] : 0.f;
    rqs[tid] = ok ? p.rq[off] : 0.f;
    rks[tid] = ok ? p.rk[off] : 0.f;
  }
  cp_wait<0>();
  __syncthreads();

  // Scores Q Kᵀ for row block wp (blocks right of the diagonal are masked anyway), then the norms, the
  // scale and the decay in fp32.
  const int r0 = wp * 16;
  for (int jb = 0; jb <= wp; ++jb) {
    Acc acc;
    wmma::fill_fragment(acc, 0.f);
    mma_rows<KR, FragBt>(acc, qb + r0 * LK, LK, kb + jb * 16 * LK, LK, 16);
    wmma::store_matrix_sync(pf + r0 * kLF + jb * 16, acc, kLF, wmma::mem_row_major);
  }
  __syncwarp();
  for (int e = lane; e < 16 * kC; e += 32) {
    const int i = r0 + e / kC, j = e % kC;
    const float x = j <= i && i < len ? pf[i * kLF + j] * rqs[i] * rks[j] * __expf(gam[i] - gam[j]) : 0.f;
    pb[i * kLT + j] = __float2bfloat16(x);
  }
  // Inter-chunk part e^Γ (Q S), then the intra-chunk part on top.
  Acc acc[4];
  for (int cb = 0; cb < 4; ++cb) wmma::fill_fragment(acc[cb], 0.f);
  mma_rows_x4(acc, qb + r0 * LK, LK, hb, kLT, KR);
  __syncwarp();  // pb is done reading pf
  for (int cb = 0; cb < 4; ++cb) wmma::store_matrix_sync(pf + r0 * kLF + cb * 16, acc[cb], kLF, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 16 * kC; e += 32) {
    const int i = r0 + e / kC, j = e % kC;
    pf[i * kLF + j] *= rqs[i] * __expf(gam[i]);
  }
  __syncwarp();
  for (int cb = 0; cb < 4; ++cb) wmma::load_matrix_sync(acc[cb], pf + r0 * kLF + cb * 16, kLF, wmma::mem_row_major);
  mma_rows_x4(acc, pb + r0 * kLT, kLT, vb, kLT, wp + 1);
  __syncwarp();
  for (int cb = 0; cb < 4; ++cb) wmma::store_matrix_sync(pf + r0 * kLF + cb * 16, acc[cb], kLF, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 16 * (kC / 2); e += 32) {  // two columns per store
    const int i = r0 + e / (kC / 2), j = (e % (kC / 2)) * 2;
    if (i < len && v0 + j < V) {
      const __nv_bfloat162 x = __floats2bfloat162_rn(pf[i * kLF + j], pf[i * kLF + j + 1]);
      *reinterpret_cast<__nv_bfloat162*>(p.o + (static_cast<size_t>(tok0 + i) * H + h) * V + v0 + j) = x;
    }
  }
}

template <typename Kern>
void set_smem(Kern kern, size_t bytes) {
  if (bytes > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// JET_LA_CHUNK_PROFILE=1: time each kernel with CUDA events (synchronising) and print the split to stderr.
struct KernelTimer {
  bool on = std::getenv("JET_LA_CHUNK_PROFILE") != nullptr;
  cudaStream_t stream;
  cudaEvent_t ev[4];
  int n = 0;
  explicit KernelTimer(cudaStream_t s) : stream(s) {
    if (on)
      for (auto& e : ev) C10_CUDA_CHECK(cudaEventCreate(&e));
  }
  void mark() {
    if (on) C10_CUDA_CHECK(cudaEventRecord(ev[n++], stream));
  }
  ~KernelTimer() {
    if (!on) return;
    float ms[3] = {0, 0, 0};
    cudaEventSynchronize(ev[n - 1]);
    for (int i = 0; i + 1 < n; ++i) cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]);
    std::fprintf(stderr, "la_chunk kernels ms: prep %.4f state %.4f output %.4f\n", ms[0], ms[1], ms[2]);
    for (auto& e : ev) cudaEventDestroy(e);
  }
};

template <int K, bool DELTA>
void run_chunked(const Params& p, const Chunks& m, int N, cudaStream_t stream) {
  const int H = p.H, V = p.V;
  KernelTimer timer(stream);
  timer.mark();
  {
    auto kern = prep_kernel<K, DELTA>;
    const size_t bytes = prep_smem<K>(DELTA);
    set_smem(kern, bytes);
    kern<<<dim3(m.nct, H), 128, bytes, stream>>>(p, m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  timer.mark();
  {
    // Enough blocks to fill the GPU: 64 columns per block when there are ≥ 2 per SM, else 32.
    const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const bool wide = static_cast<int64_t>(N) * H * ((V + 63) / 64) >= 2 * sms;
    auto launch = [&](auto kern, int nw, size_t bytes) {
      set_smem(kern, bytes);
      const int bv = 16 * nw;
      kern<<<dim3((V + bv - 1) / bv, H, N), 32 * nw, bytes, stream>>>(p, m);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (wide)
      launch(state_kernel<K, 4, DELTA>, 4, StateSmem<K, 4>::bytes);
    else
      launch(state_kernel<K, 2, DELTA>, 2, StateSmem<K, 2>::bytes);
  }
  timer.mark();
  if (m.nct > 0) {
    auto kern = output_kernel<K, DELTA>;
    set_smem(kern, OutSmem<K>::bytes);
    kern<<<dim3(m.nct, H, (V + kC - 1) / kC), 128, OutSmem<K>::bytes, stream>>>(p, m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  timer.mark();
}

template <bool DELTA>
void dispatch(int K, const Params& p, const Chunks& m, int N, cudaStream_t stream) {
  switch (K) {
    case 32: return run_chunked<32, DELTA>(p, m, N, stream);
    case 64: return run_chunked<64, DELTA>(p, m, N, stream);
    case 96: return run_chunked<96, DELTA>(p, m, N, stream);
    case 128: return run_chunked<128, DELTA>(p, m, N, stream);
    default: JET_FAIL("linear_attention_chunk_cuda: head dim K={} not supported (32/64/96/128)", K);
  }
}

}  // namespace

bool linear_attention_chunk_cuda_supports(int64_t K, int64_t V) {
  return (K == 32 || K == 64 || K == 96 || K == 128) && V > 0 && V % 8 == 0;
}

LinearAttentionOutput linear_attention_chunk_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                  const at::Tensor& g, bool fixed_decay, const at::Tensor& beta,
                                                  const at::Tensor& initial_state, const at::Tensor& cu_seqlens,
                                                  double scale, bool qk_l2norm) {
  JET_CHECK(q.is_cuda() && q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4,
            "linear_attention_chunk_cuda: q, k must be CUDA [B, T, H, K], v [B, T, H, V]");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  JET_CHECK(v.size(0) == B && v.size(1) == T && v.size(2) == H, "linear_attention_chunk_cuda: v {} does not match q {}",
            shape_str(v.sizes()), shape_str(q.sizes()));
  JET_CHECK(q.scalar_type() == at::kBFloat16 && k.scalar_type() == at::kBFloat16 && v.scalar_type() == at::kBFloat16,
            "linear_attention_chunk_cuda: q, k, v must be bf16");
  JET_CHECK(linear_attention_chunk_cuda_supports(K, V),
            "linear_attention_chunk_cuda: K={} V={} not supported (K 32/64/96/128, V a multiple of 8)", K, V);
  const bool delta = beta.defined();
  if (g.defined())
    JET_CHECK(g.scalar_type() == at::kFloat && (fixed_decay ? g.numel() == H : g.sizes() == at::IntArrayRef({B, T, H})),
              "linear_attention_chunk_cuda: g must be fp32 [H] (fixed) or [B, T, H]");
  if (delta)
    JET_CHECK(beta.scalar_type() == at::kFloat && beta.sizes() == at::IntArrayRef({B, T, H}),
              "linear_attention_chunk_cuda: beta must be fp32 [B, T, H]");
  const int64_t Ttot = B * T;
  JET_CHECK(Ttot < (int64_t{1} << 30), "linear_attention_chunk_cuda: {} tokens are too many", Ttot);

  // Chunk map: B sequences of T tokens, or the packed sequences of cu_seqlens.
  Chunks m{nullptr, 0, static_cast<int>(T), static_cast<int>((T + kC - 1) / kC)};
  int64_t N = B;
  at::Tensor tab;
  if (cu_seqlens.defined()) {
    JET_CHECK(B == 1 && cu_seqlens.dim() == 1 && cu_seqlens.size(0) >= 2, "linear_attention_chunk_cuda: bad cu_seqlens");
    const at::Tensor cu = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
    const int64_t* cp = cu.data_ptr<int64_t>();
    N = cu.size(0) - 1;
    std::vector<int> tok0, len, first{0};
    for (int64_t n = 0; n < N; ++n) {
      JET_CHECK(cp[n + 1] >= cp[n] && cp[n + 1] <= T, "linear_attention_chunk_cuda: bad cu_seqlens");
      for (int64_t t = cp[n]; t < cp[n + 1]; t += kC)
        tok0.push_back(static_cast<int>(t)), len.push_back(static_cast<int>(std::min<int64_t>(kC, cp[n + 1] - t)));
      first.push_back(static_cast<int>(tok0.size()));
    }
    std::vector<int> all(tok0);
    all.insert(all.end(), len.begin(), len.end());
    all.insert(all.end(), first.begin(), first.end());
    tab = at::tensor(all, at::TensorOptions().dtype(at::kInt)).to(q.device());
    m.tab = tab.data_ptr<int>();
    m.nct = static_cast<int>(tok0.size());
  } else {
    m.nct = static_cast<int>(B * m.ncs);
  }
  if (initial_state.defined())
    JET_CHECK(initial_state.sizes() == at::IntArrayRef({N, H, K, V}), "linear_attention_chunk_cuda: initial_state {} must be [{}, {}, {}, {}]",
              shape_str(initial_state.sizes()), N, H, K, V);

  c10::cuda::CUDAGuard guard(q.device());
  auto bfo = q.options().dtype(at::kBFloat16), f32 = q.options().dtype(at::kFloat);
  // q, k and v are read with 16-byte copies: a misaligned view is copied first.
  auto aligned = [](at::Tensor t) {
    t = t.contiguous();
    return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 ? t.clone() : t;
  };
  at::Tensor qc = aligned(q), kc = aligned(k), vc = aligned(v);
  at::Tensor gc = g.defined() ? g.contiguous() : g, bc = delta ? beta.contiguous() : beta;
  at::Tensor s0 = initial_state.defined() ? initial_state.to(at::kFloat).contiguous() : initial_state;
  at::Tensor rq = at::empty({H, Ttot}, f32), rk = at::empty({H, Ttot}, f32);
  at::Tensor w = delta ? at::empty({Ttot, H, K}, bfo) : at::Tensor(), u = delta ? at::empty({Ttot, H, V}, bfo) : at::Tensor();
  at::Tensor gcum = at::empty({H, Ttot}, f32), hs = at::empty({m.nct, H, K, V}, bfo);
  at::Tensor o = at::empty({B, T, H, V}, bfo), sf = at::empty({N, H, K, V}, f32);

  Params p{};
  p.q = reinterpret_cast<const bf16*>(qc.data_ptr());
  p.k = reinterpret_cast<const bf16*>(kc.data_ptr());
  p.v = reinterpret_cast<const bf16*>(vc.data_ptr());
  p.g = gc.defined() ? gc.data_ptr<float>() : nullptr;
  p.gs_t = fixed_decay ? 0 : H, p.gs_h = 1;
  p.beta = delta ? bc.data_ptr<float>() : nullptr;
  p.s0 = s0.defined() ? s0.data_ptr<float>() : nullptr;
  p.rq = rq.data_ptr<float>();
  p.rk = rk.data_ptr<float>();
  p.w = delta ? reinterpret_cast<bf16*>(w.data_ptr()) : nullptr;
  p.u = delta ? reinterpret_cast<bf16*>(u.data_ptr()) : nullptr;
  p.gcum = gcum.data_ptr<float>();
  p.hs = reinterpret_cast<bf16*>(hs.data_ptr());
  p.o = reinterpret_cast<bf16*>(o.data_ptr());
  p.sf = sf.data_ptr<float>();
  p.H = static_cast<int>(H), p.V = static_cast<int>(V), p.Ttot = static_cast<int>(Ttot);
  p.scale = static_cast<float>(scale), p.l2 = qk_l2norm;
  if (N == 0) return {o, sf};
  if (m.nct == 0 && !initial_state.defined()) return {o, sf.zero_()};
  auto stream = at::cuda::getCurrentCUDAStream();
  if (m.nct == 0) return {o, s0.clone()};
  if (delta)
    dispatch<true>(static_cast<int>(K), p, m, static_cast<int>(N), stream);
  else
    dispatch<false>(static_cast<int>(K), p, m, static_cast<int>(N), stream);
  return {o, sf};
}

}  // namespace jet::ops
