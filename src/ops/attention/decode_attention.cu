// Split-K decode attention on CUDA (flash-decoding style). Memory-bound: every K and V byte of the
// visible slots is read once per KV head, for all H / Hkv query heads of its group.
//
// Layout: a block of 4 warps handles (sequence b, KV head, one split of the slots). Inside a warp,
// LPK = D / 8 consecutive lanes own one key (8 elements each: one 16-byte load per bf16 row slice),
// so a warp reads 256 / D keys at once as coalesced row segments; the G = 4 · 256 / D lane groups of
// the block step through the split's keys interleaved, each with its own online softmax (max m, sum l,
// unnormalised output) per query head in registers. The groups merge through shared memory; with one
// split that is the answer, else each split's (m, l, o) goes to a workspace and a second kernel merges
// the splits. Scores are in log2 units (q pre-scaled by log2(e) / sqrt(D)), accumulation is fp32.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>

#include "core/check.h"
#include "core/shape.h"
#include "ops/attention/decode_attention.h"
#include "ops/row_view.h"

namespace jet::ops {
namespace {

constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kE = 8;  // elements per lane of a key / value row
constexpr int kMaxRep = 8;

// 8 elements of a row as floats (one 16-byte load for bf16, two for fp32).
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&x)[kE]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    x[2 * i] = f.x, x[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float (&x)[kE]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
}
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

// 16-byte asynchronous global -> shared copy; with full == false it writes zeros (nothing is read).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool full) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(full ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

struct KVView {
  const void *k, *v;
  int64_t k_sb, k_sh, k_ss, v_sb, v_sh, v_ss;  // element strides (batch, head, slot)
};

// The end of a split block: G partial online-softmax states per query row in shared memory (o [G][ROWS][D]
// unnormalised, ml [G][ROWS][2] = max, sum) merged for rows 0 .. rows - 1, i.e. heads bh0 + r of the
// flattened [B·H]. With out: the normalised result; else the split's (o, m, l) for the combine kernel.
template <typename T, int D, int G, int ROWS>
__device__ __forceinline__ void merge_store(const float* so, const float* sml, int rows, int64_t bh0, int split,
                                            int splits, T* out, float* part_o, float* part_ml) {
  for (int i = threadIdx.x; i < rows * D; i += blockDim.x) {
    const int r = i / D, d = i % D;
    float M = -INFINITY;
#pragma unroll
    for (int x = 0; x < G; ++x) M = fmaxf(M, sml[(x * ROWS + r) * 2]);
    float L = 0.f, O = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int x = 0; x < G; ++x) {
        const float c = exp2f(sml[(x * ROWS + r) * 2] - M);
        L = fmaf(c, sml[(x * ROWS + r) * 2 + 1], L);
        O = fmaf(c, so[(x * ROWS + r) * D + d], O);
      }
    }
    const int64_t bh = bh0 + r;
    if (out) {
      store(out + bh * D + d, L > 0.f ? O / L : 0.f);
    } else {
      part_o[(bh * splits + split) * D + d] = O;
      if (d == 0) part_ml[(bh * splits + split) * 2] = M, part_ml[(bh * splits + split) * 2 + 1] = L;
    }
  }
}

// grid (splits, Hkv, B). out != nullptr (one split): writes the normalised [B, H, D] result; else
// part_o [B, H, splits, D] (unnormalised) and part_ml [B, H, splits, 2] (max, sum) for the combine.
template <typename T, int D, int REP>
__global__ void __launch_bounds__(kThreads)
decode_attention_split_kernel(const T* __restrict__ q, KVView kv, const int64_t* __restrict__ positions, int S,
                              int chunk, float qscale, T* __restrict__ out, float* __restrict__ part_o,
                              float* __restrict__ part_ml) {
  constexpr int LPK = D / kE, KPW = 32 / LPK, G = kWarps * KPW, U = 2;
  const int split = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, splits = gridDim.x, Hkv = gridDim.y;
  const int H = Hkv * REP;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int g = w * KPW + lane / LPK, sub = lane % LPK;

  int n = S;
  if (positions) n = static_cast<int>(min(static_cast<int64_t>(S), positions[b] + 1));
  const int begin = split * chunk, end = min(begin + chunk, n);

  float qf[REP][kE];
#pragma unroll
  for (int r = 0; r < REP; ++r)
#pragma unroll
    for (int e = 0; e < kE; ++e)
      qf[r][e] = to_f(q[(static_cast<int64_t>(b) * H + hk * REP + r) * D + sub * kE + e]) * qscale;

  float m[REP], l[REP], acc[REP][kE];
#pragma unroll
  for (int r = 0; r < REP; ++r) {
    m[r] = -INFINITY, l[r] = 0.f;
#pragma unroll
    for (int e = 0; e < kE; ++e) acc[r][e] = 0.f;
  }

  // K/V tiles of TILE keys go through a STAGES-deep cp.async pipeline in shared memory (enough bytes
  // in flight to cover the memory latency); each lane then reads its 16-byte row slices from there.
  constexpr int TILE = U * G, STAGES = sizeof(T) == 2 ? 4 : 2, ROW_CHUNKS = D * static_cast<int>(sizeof(T)) / 16;
  constexpr int TILE_CHUNKS = TILE * ROW_CHUNKS;  // 16-byte chunks of one tile of K (and of V)
  constexpr int PIPE_BYTES = STAGES * 2 * TILE * D * static_cast<int>(sizeof(T));
  constexpr int MERGE_BYTES = G * REP * (D + 2) * 4;
  __shared__ __align__(16) unsigned char smem[PIPE_BYTES > MERGE_BYTES ? PIPE_BYTES : MERGE_BYTES];
  T* pipe = reinterpret_cast<T*>(smem);  // [STAGES][2 (K, V)][TILE][D]
  const T* kbase = static_cast<const T*>(kv.k) + b * kv.k_sb + hk * kv.k_sh;
  const T* vbase = static_cast<const T*>(kv.v) + b * kv.v_sb + hk * kv.v_sh;
  const int ntiles = end > begin ? (end - begin + TILE - 1) / TILE : 0;
  auto issue = [&](int t) {  // tile t into stage t % STAGES (zeros past the visible keys)
    T* st = pipe + (t % STAGES) * 2 * TILE * D;
    for (int c = threadIdx.x; c < TILE_CHUNKS; c += kThreads) {
      const int key = c / ROW_CHUNKS, off = (c % ROW_CHUNKS) * (16 / static_cast<int>(sizeof(T)));
      const int j = begin + t * TILE + key;
      const bool full = j < end;
      const int jj = full ? j : begin;
      cp_async16(st + key * D + off, kbase + jj * kv.k_ss + off, full);
      cp_async16(st + (TILE + key) * D + off, vbase + jj * kv.v_ss + off, full);
    }
  };
#pragma unroll
  for (int t = 0; t < STAGES - 1; ++t) {
    if (t < ntiles) issue(t);
    cp_async_commit();  // empty groups keep the count uniform
  }
  for (int t = 0; t < ntiles; ++t) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile t is visible to all; everyone is done with tile t - 1's stage
    if (t + STAGES - 1 < ntiles) issue(t + STAGES - 1);
    cp_async_commit();
    const T* st = pipe + (t % STAGES) * 2 * TILE * D;
    float kf[U][kE], vf[U][kE];
    bool ok[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int key = u * G + g;
      ok[u] = begin + t * TILE + key < end;
      load8(st + key * D + sub * kE, kf[u]);
      load8(st + (TILE + key) * D + sub * kE, vf[u]);
    }
    #pragma unroll
    for (int r = 0; r < REP; ++r) {
      float s[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        float d = 0.f;
#pragma unroll
        for (int e = 0; e < kE; ++e) d = fmaf(qf[r][e], kf[u][e], d);
#pragma unroll
        for (int o = LPK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        s[u] = ok[u] ? d : -INFINITY;
      }
      float smax = s[0];
#pragma unroll
      for (int u = 1; u < U; ++u) smax = fmaxf(smax, s[u]);
      if (smax > m[r]) {  // new maximum: rescale what this group holds (exp2(-inf) = 0 at the start)
        const float c = exp2f(m[r] - smax);
        l[r] *= c;
#pragma unroll
        for (int e = 0; e < kE; ++e) acc[r][e] *= c;
        m[r] = smax;
      }
      if (m[r] == -INFINITY) continue;  // nothing visible to this group yet
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const float p = exp2f(s[u] - m[r]);
        l[r] += p;
#pragma unroll
        for (int e = 0; e < kE; ++e) acc[r][e] = fmaf(p, vf[u][e], acc[r][e]);
      }
    }
  }

  // Merge the G groups of the block (in the pipeline's shared memory, now idle).
  cp_async_wait<0>();
  __syncthreads();
  auto& sm_o = *reinterpret_cast<float (*)[G][REP][D]>(smem);
  auto& sm_ml = *reinterpret_cast<float (*)[G][REP][2]>(smem + G * REP * D * 4);
#pragma unroll
  for (int r = 0; r < REP; ++r) {
#pragma unroll
    for (int e = 0; e < kE; ++e) sm_o[g][r][sub * kE + e] = acc[r][e];
    if (sub == 0) sm_ml[g][r][0] = m[r], sm_ml[g][r][1] = l[r];
  }
  __syncthreads();
  merge_store<T, D, G, REP>(&sm_o[0][0][0], &sm_ml[0][0][0], REP, b * H + hk * REP, split, splits, out, part_o, part_ml);
}

// grid (B · H), block D: merges the splits of one (b, h).
template <typename T, int D>
__global__ void __launch_bounds__(D)
decode_attention_combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml, int splits,
                                T* __restrict__ out) {
  const int64_t bh = blockIdx.x;
  const int d = threadIdx.x;
  const float* ml = part_ml + bh * splits * 2;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ml[2 * s]);
  float L = 0.f, O = 0.f;
  if (M != -INFINITY) {
    for (int s = 0; s < splits; ++s) {
      const float c = exp2f(ml[2 * s] - M);
      L = fmaf(c, ml[2 * s + 1], L);
      O = fmaf(c, part_o[(bh * splits + s) * D + d], O);
    }
  }
  store(out + bh * D + d, L > 0.f ? O / L : 0.f);
}

// ---- Tensor-core variant (bf16): QKᵀ and PV as mma.sync m16n8k16 with the KV head's query heads as the
// rows of one 16-row tile (rows past H / Hkv are zero and dropped), so ~D·16 FLOP per key go through the
// tensor cores instead of fp32 FMAs + shuffles. Same grid and split-K outputs as the kernel above; each of
// the 4 warps owns 16 keys of every 64-key tile, keeps its own online softmax (fragment rows g and g + 8
// of lane group g = lane / 4), and the warps merge through shared memory. Tiles stream through a 3-stage
// cp.async pipeline with the 16-byte chunks of each row XOR-swizzled by (row mod 8), so that ldmatrix reads
// 8 rows without bank conflicts.
constexpr int kMmaKeys = 16 * kWarps, kMmaStages = 3, kMmaRows = 16;

template <int D>
constexpr int mma_smem_bytes() {
  constexpr int pipe = kMmaStages * 2 * kMmaKeys * D * 2, merge = kWarps * kMmaRows * (D + 2) * 4;
  return pipe > merge ? pipe : merge;
}

__device__ __forceinline__ void ldsm_x4(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// c += a · b, a 16×16 (row), b 16×8 (col), bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&h);
}

// grid (splits, Hkv, B), block kThreads, dynamic shared memory mma_smem_bytes<D>(); rep = H / Hkv <= 16.
template <int D>
__global__ void __launch_bounds__(kThreads)
decode_attention_mma_kernel(const __nv_bfloat16* __restrict__ q, KVView kv, const int64_t* __restrict__ positions,
                            int S, int chunk, int rep, float qscale, __nv_bfloat16* __restrict__ out,
                            float* __restrict__ part_o, float* __restrict__ part_ml) {
  using T = __nv_bfloat16;
  constexpr int ROW_CHUNKS = D / 8, KSTEPS = D / 16, NT = D / 8;
  constexpr int TILE_CHUNKS = kMmaKeys * ROW_CHUNKS;
  extern __shared__ __align__(16) unsigned char smem[];
  T* pipe = reinterpret_cast<T*>(smem);  // [stages][2 (K, V)][kMmaKeys][D], chunks swizzled
  const int split = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, splits = gridDim.x, Hkv = gridDim.y;
  const int H = Hkv * rep;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;

  int n = S;
  if (positions) n = static_cast<int>(min(static_cast<int64_t>(S), positions[b] + 1));
  const int begin = split * chunk, end = min(begin + chunk, n);

  // Q as A fragments: rows g and g + 8 (heads hk·rep + row), columns 2·t4 (+1) and 2·t4 + 8 (+1) of each
  // 16-wide k step; rows >= rep are zero.
  unsigned qa[KSTEPS][4];
  {
    const unsigned* q0 = reinterpret_cast<const unsigned*>(q + (static_cast<int64_t>(b) * H + hk * rep + g) * D);
    const unsigned* q1 = reinterpret_cast<const unsigned*>(q + (static_cast<int64_t>(b) * H + hk * rep + g + 8) * D);
    const bool r0 = g < rep, r1 = g + 8 < rep;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
      const int c = (kk * 16 + 2 * t4) / 2;  // in bf16 pairs
      qa[kk][0] = r0 ? q0[c] : 0u;
      qa[kk][1] = r1 ? q1[c] : 0u;
      qa[kk][2] = r0 ? q0[c + 4] : 0u;
      qa[kk][3] = r1 ? q1[c + 4] : 0u;
    }
  }
  float o[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g, g + 8; l is this lane's share

  const T* kbase = static_cast<const T*>(kv.k) + b * kv.k_sb + hk * kv.k_sh;
  const T* vbase = static_cast<const T*>(kv.v) + b * kv.v_sb + hk * kv.v_sh;
  const int ntiles = end > begin ? (end - begin + kMmaKeys - 1) / kMmaKeys : 0;
  auto issue = [&](int t) {
    T* st = pipe + (t % kMmaStages) * 2 * kMmaKeys * D;
    for (int c = threadIdx.x; c < TILE_CHUNKS; c += kThreads) {
      const int key = c / ROW_CHUNKS, ch = c % ROW_CHUNKS;
      const int j = begin + t * kMmaKeys + key;
      const bool full = j < end;
      const int jj = full ? j : begin;
      const int dst = key * D + ((ch ^ (key & 7)) * 8);
      cp_async16(st + dst, kbase + jj * kv.k_ss + ch * 8, full);
      cp_async16(st + kMmaKeys * D + dst, vbase + jj * kv.v_ss + ch * 8, full);
    }
  };
#pragma unroll
  for (int t = 0; t < kMmaStages - 1; ++t) {
    if (t < ntiles) issue(t);
    cp_async_commit();
  }
  const int mat = lane >> 3, r8 = lane & 7;
  for (int t = 0; t < ntiles; ++t) {
    cp_async_wait<kMmaStages - 2>();
    __syncthreads();
    if (t + kMmaStages - 1 < ntiles) issue(t + kMmaStages - 1);
    cp_async_commit();
    const T* st = pipe + (t % kMmaStages) * 2 * kMmaKeys * D;
    const unsigned ks = static_cast<unsigned>(__cvta_generic_to_shared(st));
    const unsigned vs = ks + kMmaKeys * D * 2;
    // S = Q Kᵀ for this warp's 16 keys: two n tiles of 8 keys.
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    {
      const int key = w * 16 + (mat >> 1) * 8 + r8;  // matrices: (keys 0-7 | 8-15) × (chunk 2kk | 2kk+1)
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk) {
        const int ch = 2 * kk + (mat & 1);
        unsigned kb[4];
        ldsm_x4(ks + (key * D + ((ch ^ (key & 7)) * 8)) * 2, kb);
        mma_bf16(s[0], qa[kk], kb[0], kb[1]);
        mma_bf16(s[1], qa[kk], kb[2], kb[3]);
      }
    }
    // Online softmax (log2 units); columns past the visible keys are -inf.
    const int key0 = begin + t * kMmaKeys + w * 16 + 2 * t4;
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool ok = key0 + nt * 8 + e < end;
        s[nt][e] = ok ? s[nt][e] * qscale : -INFINITY;
        s[nt][2 + e] = ok ? s[nt][2 + e] * qscale : -INFINITY;
        mx0 = fmaxf(mx0, s[nt][e]);
        mx1 = fmaxf(mx1, s[nt][2 + e]);
      }
#pragma unroll
    for (int x = 1; x <= 2; x <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, x));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, x));
    }
    const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
    const float u0 = n0 == -INFINITY ? 0.f : n0, u1 = n1 == -INFINITY ? 0.f : n1;  // no (-inf) - (-inf)
    const float c0 = exp2f(m0 - u0), c1 = exp2f(m1 - u1);
    m0 = n0, m1 = n1;
    l0 *= c0, l1 *= c1;
#pragma unroll
    for (int j = 0; j < NT; ++j) o[j][0] *= c0, o[j][1] *= c0, o[j][2] *= c1, o[j][3] *= c1;
    unsigned pa[4];  // P as the A fragment of P·V (k = the 16 keys): n tile 0 → a0, a1; n tile 1 → a2, a3
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const float p0 = exp2f(s[nt][0] - u0), p1 = exp2f(s[nt][1] - u0);
      const float p2 = exp2f(s[nt][2] - u1), p3 = exp2f(s[nt][3] - u1);
      l0 += p0 + p1, l1 += p2 + p3;
      pa[2 * nt] = pack_bf16(p0, p1);
      pa[2 * nt + 1] = pack_bf16(p2, p3);
    }
    // O += P V: V rows are keys (k), columns d (n); ldmatrix.trans gives the col-major B fragments.
    {
      const int key = w * 16 + (mat & 1) * 8 + r8;  // matrices: (keys 0-7 | 8-15) × (chunk 2dp | 2dp+1)
#pragma unroll
      for (int dp = 0; dp < NT / 2; ++dp) {
        const int ch = 2 * dp + (mat >> 1);
        unsigned vb[4];
        ldsm_x4_trans(vs + (key * D + ((ch ^ (key & 7)) * 8)) * 2, vb);
        mma_bf16(o[2 * dp], pa, vb[0], vb[1]);
        mma_bf16(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
  }

  // The quad's shares of l, then the warps merge (in the idle pipeline memory).
#pragma unroll
  for (int x = 1; x <= 2; x <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, x);
    l1 += __shfl_xor_sync(0xffffffffu, l1, x);
  }
  cp_async_wait<0>();
  __syncthreads();
  auto& sm_o = *reinterpret_cast<float (*)[kWarps][kMmaRows][D]>(smem);
  auto& sm_ml = *reinterpret_cast<float (*)[kWarps][kMmaRows][2]>(smem + kWarps * kMmaRows * D * 4);
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int d = j * 8 + 2 * t4;
    sm_o[w][g][d] = o[j][0], sm_o[w][g][d + 1] = o[j][1];
    sm_o[w][g + 8][d] = o[j][2], sm_o[w][g + 8][d + 1] = o[j][3];
  }
  if (t4 == 0) {
    sm_ml[w][g][0] = m0, sm_ml[w][g][1] = l0;
    sm_ml[w][g + 8][0] = m1, sm_ml[w][g + 8][1] = l1;
  }
  __syncthreads();
  merge_store<T, D, kWarps, kMmaRows>(&sm_o[0][0][0], &sm_ml[0][0][0], rep, b * H + hk * rep, split, splits, out,
                                      part_o, part_ml);
}

// Splits the slots (from shapes and the device only: a CUDA graph stays valid while positions change), runs
// kernel(grid, chunk, kv, out, part_o, part_ml) and, with more than one split, the combine. No split is
// shorter than 256 slots. resident == 0: enough blocks to fill the GPU ~4 times over. resident > 0 (blocks of
// this kernel one SM holds at once): the fewest splits that fill whole waves of sms · resident blocks to
// >= 90% (blocks that all take as long gain nothing from being more and smaller, but a last wave that is
// mostly empty costs as much as a full one: 815 rows × 2 KV heads on 132 SMs × 2 is 6.2 waves unsplit).
template <typename T, int D, typename K>
void run_splits(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out, int resident,
                const K& kernel) {
  const int B = q.size(0), H = q.size(1), Hkv = k.size(1), S = k.size(2);
  auto stream = at::cuda::getCurrentCUDAStream();
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int base = B * Hkv, most = (S + 255) / 256;
  int splits = std::max(1, std::min((4 * sms + base - 1) / base, most));
  if (resident > 0) {
    const int wave = sms * resident;
    for (int sp = 1; sp <= most; ++sp) {
      const int64_t blocks = static_cast<int64_t>(base) * sp, waves = (blocks + wave - 1) / wave;
      if (blocks >= wave && blocks >= 0.9 * waves * wave) {
        splits = sp;
        break;
      }
    }
  }
  const int chunk = (S + splits - 1) / splits;
  splits = (S + chunk - 1) / chunk;
  KVView kv{k.data_ptr(), v.data_ptr(), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2)};
  T* op = reinterpret_cast<T*>(out.data_ptr());
  const dim3 grid(splits, Hkv, B);
  if (splits == 1) {
    kernel(grid, chunk, kv, op, nullptr, nullptr, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  auto f32 = q.options().dtype(at::kFloat);
  at::Tensor part_o = at::empty({B, H, splits, D}, f32), part_ml = at::empty({B, H, splits, 2}, f32);
  kernel(grid, chunk, kv, nullptr, part_o.data_ptr<float>(), part_ml.data_ptr<float>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  decode_attention_combine_kernel<T, D><<<B * H, D, 0, stream>>>(part_o.data_ptr<float>(), part_ml.data_ptr<float>(),
                                                                 splits, op);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

float log2_scale(int D) { return static_cast<float>(M_LOG2E / std::sqrt(static_cast<double>(D))); }

template <typename T, int D, int REP>
void launch(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
            at::Tensor& out) {
  const int64_t* pos = positions.defined() ? positions.data_ptr<int64_t>() : nullptr;
  const T* qp = reinterpret_cast<const T*>(q.data_ptr());
  const int S = k.size(2);
  run_splits<T, D>(q, k, v, out, 0, [&](dim3 grid, int chunk, KVView kv, T* op, float* po, float* pml, cudaStream_t st) {
    decode_attention_split_kernel<T, D, REP><<<grid, kThreads, 0, st>>>(qp, kv, pos, S, chunk, log2_scale(D) , op, po,
                                                                       pml);
  });
}

template <int D>
void launch_mma(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                at::Tensor& out) {
  using T = __nv_bfloat16;
  constexpr int smem = mma_smem_bytes<D>();
  static const int resident = [] {  // more than 48 KB of dynamic shared memory needs the opt-in
    C10_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        smem));
    int n = 0;
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_attention_mma_kernel<D>, kThreads, smem));
    return std::max(n, 1);
  }();
  const int64_t* pos = positions.defined() ? positions.data_ptr<int64_t>() : nullptr;
  const T* qp = reinterpret_cast<const T*>(q.data_ptr());
  const int S = k.size(2), rep = q.size(1) / k.size(1);
  run_splits<T, D>(q, k, v, out, resident,
                   [&](dim3 grid, int chunk, KVView kv, T* op, float* po, float* pml, cudaStream_t st) {
    decode_attention_mma_kernel<D><<<grid, kThreads, smem, st>>>(qp, kv, pos, S, chunk, rep, log2_scale(D), op, po,
                                                                 pml);
  });
}

template <typename T, int D>
void dispatch_rep(int rep, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                  at::Tensor& out) {
  switch (rep) {
    case 1: return launch<T, D, 1>(q, k, v, pos, out);
    case 2: return launch<T, D, 2>(q, k, v, pos, out);
    case 3: return launch<T, D, 3>(q, k, v, pos, out);
    case 4: return launch<T, D, 4>(q, k, v, pos, out);
    case 5: return launch<T, D, 5>(q, k, v, pos, out);
    case 6: return launch<T, D, 6>(q, k, v, pos, out);
    case 7: return launch<T, D, 7>(q, k, v, pos, out);
    case 8: return launch<T, D, 8>(q, k, v, pos, out);
  }
  JET_FAIL("decode_attention_cuda: {} query heads per KV head (at most {})", rep, kMaxRep);
}

template <typename T>
void dispatch_d(int rep, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                at::Tensor& out) {
  if (q.size(2) == 64) return dispatch_rep<T, 64>(rep, q, k, v, pos, out);
  return dispatch_rep<T, 128>(rep, q, k, v, pos, out);
}

// grid (B, H + Hkv), block D / 2: thread i rotates the pair (i, i + D/2) of one head; KV-head blocks
// also copy v.
template <typename T>
__global__ void rope_kv_write_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                     const T* __restrict__ cos, const T* __restrict__ sin,
                                     const int64_t* __restrict__ positions, T* __restrict__ kc, T* __restrict__ vc,
                                     int64_t k_sb, int64_t k_sh, int64_t k_ss, int64_t v_sb, int64_t v_sh,
                                     int64_t v_ss, int cap, bool ring, T* __restrict__ q_out, int H, int Hkv, int D,
                                     int64_t q_rs, int64_t k_rs, int64_t v_rs) {
  const int b = blockIdx.x, y = blockIdx.y, i = threadIdx.x, half = D / 2;
  const T* c = cos + static_cast<int64_t>(b) * D;
  const T* s = sin + static_cast<int64_t>(b) * D;
  const bool is_q = y < H;
  const int h = is_q ? y : y - H;
  const T* x = is_q ? q + b * q_rs + h * D : k + b * k_rs + h * D;
  const float x1 = to_f(x[i]), x2 = to_f(x[i + half]);
  const float o1 = x1 * to_f(c[i]) - x2 * to_f(s[i]);
  const float o2 = x2 * to_f(c[i + half]) + x1 * to_f(s[i + half]);
  if (is_q) {
    T* o = q_out + (static_cast<int64_t>(b) * H + h) * D;
    store(o + i, o1);
    store(o + i + half, o2);
    return;
  }
  int64_t slot = positions[b];
  if (ring) slot %= cap;
  T* ko = kc + b * k_sb + h * k_sh + slot * k_ss;
  store(ko + i, o1);
  store(ko + i + half, o2);
  const T* vx = v + b * v_rs + h * D;
  T* vo = vc + b * v_sb + h * v_sh + slot * v_ss;
  vo[i] = vx[i];
  vo[i + half] = vx[i + half];
}

bool aligned16(const at::Tensor& t) {
  const int64_t e = t.element_size();
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && (t.stride(0) * e) % 16 == 0 &&
         (t.stride(1) * e) % 16 == 0 && (t.stride(2) * e) % 16 == 0;
}

}  // namespace

bool decode_attention_cuda_supports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, DecodeKernel which) {
  if (!q.is_cuda() || !k.is_cuda() || !v.is_cuda()) return false;
  if (q.dim() != 3 || k.dim() != 4 || v.dim() != 4) return false;
  const auto st = q.scalar_type();
  if ((st != at::kBFloat16 && st != at::kFloat) || k.scalar_type() != st || v.scalar_type() != st) return false;
  const int64_t D = q.size(2), H = q.size(1), Hkv = k.size(1);
  if ((D != 64 && D != 128) || k.size(3) != D || v.size(3) != D || v.sizes() != k.sizes()) return false;
  if (Hkv == 0 || H % Hkv != 0 || k.size(0) != q.size(0) || k.size(2) < 1) return false;
  if (k.stride(3) != 1 || v.stride(3) != 1 || !aligned16(k) || !aligned16(v)) return false;
  if (k.size(2) >= (int64_t{1} << 31) / D) return false;
  const int64_t rep = H / Hkv;
  const bool simt = rep <= kMaxRep, mma = st == at::kBFloat16 && rep <= kMmaRows;
  switch (which) {
    case DecodeKernel::simt: return simt;
    case DecodeKernel::mma: return mma;
    default: return simt || mma;
  }
}

bool rope_kv_write_cuda_supports(const at::Tensor& q, const at::Tensor& k_cache) {
  const auto st = q.scalar_type();
  return q.is_cuda() && k_cache.is_cuda() && (st == at::kBFloat16 || st == at::kFloat) && k_cache.scalar_type() == st &&
         k_cache.dim() == 4 && k_cache.size(3) % 2 == 0 && k_cache.size(3) <= 2048;
}

at::Tensor rope_kv_write_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cos,
                              const at::Tensor& sin, const at::Tensor& positions, const at::Tensor& k_cache,
                              const at::Tensor& v_cache, bool ring) {
  JET_CHECK(rope_kv_write_cuda_supports(q, k_cache), "rope_kv_write_cuda: unsupported q {} / cache {}",
            shape_str(q.sizes()), shape_str(k_cache.sizes()));
  const int64_t B = q.size(0), Hkv = k_cache.size(1), cap = k_cache.size(2), D = k_cache.size(3);
  const int64_t H = q.numel() / (B * D);
  const auto st = q.scalar_type();
  JET_CHECK(q.numel() == B * H * D && k.numel() == B * Hkv * D && v.numel() == B * Hkv * D &&
                v_cache.sizes() == k_cache.sizes() && k_cache.size(0) >= B && cos.numel() == B * D &&
                sin.numel() == B * D && positions.numel() == B && positions.scalar_type() == at::kLong &&
                k.scalar_type() == st && v.scalar_type() == st && cos.scalar_type() == st &&
                sin.scalar_type() == st && v_cache.scalar_type() == st && k_cache.stride(3) == 1 &&
                v_cache.stride(3) == 1,
            "rope_kv_write_cuda: q {}, k {}, v {}, cos {}, positions {} do not fit the cache {}", shape_str(q.sizes()),
            shape_str(k.sizes()), shape_str(v.sizes()), shape_str(cos.sizes()), shape_str(positions.sizes()),
            shape_str(k_cache.sizes()));
  c10::cuda::CUDAGuard guard(q.device());
  // q, k, v as rows of H·D / Hkv·D elements, read in place when row-strided (the parts of a packed qkv).
  auto rows = [&](const at::Tensor& t, int64_t width) {
    const int64_t rs = uniform_row_stride(t);
    if (rs >= 0 && t.size(-1) == width) return std::make_pair(t, rs);
    return std::make_pair(t.contiguous(), width);
  };
  at::Tensor qc, kx, vx;
  int64_t q_rs = 0, k_rs = 0, v_rs = 0;
  std::tie(qc, q_rs) = rows(q, H * D);
  std::tie(kx, k_rs) = rows(k, Hkv * D);
  std::tie(vx, v_rs) = rows(v, Hkv * D);
  const at::Tensor cc = cos.contiguous(), sc = sin.contiguous(), pc = positions.contiguous();
  at::Tensor out = at::empty({B, H, D}, q.options());
  auto stream = at::cuda::getCurrentCUDAStream();
  const dim3 grid(B, H + Hkv);
  auto go = [&](auto tag) {
    using T = decltype(tag);
    auto P = [](const at::Tensor& t) { return reinterpret_cast<T*>(t.data_ptr()); };
    rope_kv_write_kernel<T><<<grid, D / 2, 0, stream>>>(
        P(qc), P(kx), P(vx), P(cc), P(sc), pc.data_ptr<int64_t>(), P(k_cache), P(v_cache), k_cache.stride(0),
        k_cache.stride(1), k_cache.stride(2), v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        static_cast<int>(cap), ring, P(out), static_cast<int>(H), static_cast<int>(Hkv), static_cast<int>(D), q_rs,
        k_rs, v_rs);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (st == at::kBFloat16)
    go(__nv_bfloat16{});
  else
    go(float{});
  return out;
}

at::Tensor decode_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& positions, DecodeKernel which) {
  JET_CHECK(decode_attention_cuda_supports(q, k, v, which), "decode_attention_cuda: unsupported q {} {}, k {}, v {}",
            shape_str(q.sizes()), c10::toString(q.scalar_type()), shape_str(k.sizes()), shape_str(v.sizes()));
  if (positions.defined())
    JET_CHECK(positions.is_cuda() && positions.scalar_type() == at::kLong && positions.dim() == 1 &&
                  positions.size(0) == q.size(0),
              "decode_attention_cuda: positions must be [B] int64 on the device");
  c10::cuda::CUDAGuard guard(q.device());
  at::Tensor qc = q.contiguous();
  if (reinterpret_cast<uintptr_t>(qc.data_ptr()) % 4 != 0) qc = qc.clone();  // the mma kernel reads bf16 pairs
  const at::Tensor pos = positions.defined() ? positions.contiguous() : positions;
  at::Tensor out = at::empty_like(qc);
  const int rep = static_cast<int>(q.size(1) / k.size(1));
  // The tensor cores pay off once a KV head serves several query heads; one head per KV head stays on the
  // CUDA-core kernel (the tile would be 15/16 padding).
  // JET_DECODE_ATTENTION=simt|mma overrides the automatic choice where that kernel supports the shapes
  // (benchmarks, A/B checks).
  static const DecodeKernel forced = [] {
    const char* e = std::getenv("JET_DECODE_ATTENTION");
    const std::string v = e ? e : "";
    return v == "simt" ? DecodeKernel::simt : v == "mma" ? DecodeKernel::mma : DecodeKernel::automatic;
  }();
  if (which == DecodeKernel::automatic && forced != DecodeKernel::automatic &&
      decode_attention_cuda_supports(q, k, v, forced))
    which = forced;
  const bool mma = which == DecodeKernel::mma ||
                   (which == DecodeKernel::automatic && decode_attention_cuda_supports(q, k, v, DecodeKernel::mma) &&
                    (rep >= 2 || !decode_attention_cuda_supports(q, k, v, DecodeKernel::simt)));
  if (mma) {
    if (q.size(2) == 64)
      launch_mma<64>(qc, k, v, pos, out);
    else
      launch_mma<128>(qc, k, v, pos, out);
  } else if (q.scalar_type() == at::kBFloat16) {
    dispatch_d<__nv_bfloat16>(rep, qc, k, v, pos, out);
  } else {
    dispatch_d<float>(rep, qc, k, v, pos, out);
  }
  return out;
}

}  // namespace jet::ops
