// CUDA kernel of the chunk scan (linear_attention_chunk_bwd.h) that the chunked backward runs twice:
// recomputing the incoming state of every chunk (forward order) and carrying the state gradient
// (reverse order). One warp per (batch·head, 16 value columns), sequential over the chunks; the Z tile
// [K, 16] lives in fp32 WMMA accumulators. Per chunk:
//   zin_n = Z (stored fp32);  r_n = b_n + a_n Z  (4 row tiles of 16, TF32 tensor cores, fp32 sums);
//   Z = e_n Z + w_nᵀ r_n + a2_nᵀ b2_n
// Z and r pass through the warp's own shared memory to become matrix_b operands; the warps of a block
// share nothing (no block barrier). a, w, a2, b, b2 are read as fragments straight from global memory
// (L2): every warp of a head reads the same chunk operands.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <mma.h>

#include "core/check.h"
#include "ops/linear_attention/linear_attention_chunk_bwd.h"

namespace jet::ops::detail {
namespace {

namespace wmma = nvcuda::wmma;
constexpr int kC = 64;      // chunk length
constexpr int kWarps = 4;   // warps (column tiles) per block
constexpr int kKMax = 128;  // widest K

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using Acc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <typename Frag>
__device__ __forceinline__ void load_tf32(Frag& f, const float* p, unsigned ld) {
  wmma::load_matrix_sync(f, p, ld);
#pragma unroll
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

struct ScanParams {
  const float *a, *b, *w, *a2, *b2;  // [BH, NC, C, K|V]; a, w, a2 may be null
  const float* e;                     // [BH, NC]
  const float* z0;                    // [BH, K, V]
  float *zin, *r, *z;                 // [BH, NC, K, V], [BH, NC, C, V], [BH, K, V]
  int NC, V;
  bool reverse;
};

// Z += xᵀ y for one chunk: x [C, K] (row-major, ld K, read as the col-major xᵀ), y [C, 16] (ld ldy).
template <int K>
__device__ __forceinline__ void add_tn(Acc (&z)[K / 16], const float* x, const float* y, unsigned ldy) {
#pragma unroll
  for (int ks = 0; ks < kC / 8; ++ks) {
    FragB fb;
    load_tf32(fb, y + ks * 8 * ldy, ldy);
#pragma unroll
    for (int i = 0; i < K / 16; ++i) {
      FragAt fa;
      load_tf32(fa, x + ks * 8 * K + i * 16, K);
      wmma::mma_sync(z[i], fa, fb, z[i]);
    }
  }
}

template <int K>
__global__ void __launch_bounds__(32 * kWarps) chunk_scan_kernel(ScanParams p) {
  __shared__ __align__(32) float zs_all[kWarps][kKMax * 16];
  __shared__ __align__(32) float rs_all[kWarps][kC * 16];
  const int warp = threadIdx.x / 32;
  const int col0 = (blockIdx.x * kWarps + warp) * 16;
  if (col0 >= p.V) return;  // whole warp; nothing below syncs the block
  float* zs = zs_all[warp];
  float* rs = rs_all[warp];
  const int64_t bh = blockIdx.y, V = p.V;
  Acc z[K / 16];
#pragma unroll
  for (int i = 0; i < K / 16; ++i) wmma::load_matrix_sync(z[i], p.z0 + (bh * K + i * 16) * V + col0, V, wmma::mem_row_major);
  for (int it = 0; it < p.NC; ++it) {
    const int64_t n = bh * p.NC + (p.reverse ? p.NC - 1 - it : it);  // chunk row of [BH, NC]
#pragma unroll
    for (int i = 0; i < K / 16; ++i) {
      wmma::store_matrix_sync(p.zin + (n * K + i * 16) * V + col0, z[i], V, wmma::mem_row_major);
      wmma::store_matrix_sync(zs + i * 16 * 16, z[i], 16, wmma::mem_row_major);
    }
    __syncwarp();
    // r = b + a Z
#pragma unroll
    for (int rt = 0; rt < kC / 16; ++rt) {
      Acc acc;
      wmma::load_matrix_sync(acc, p.b + (n * kC + rt * 16) * V + col0, V, wmma::mem_row_major);
      if (p.a) {
#pragma unroll
        for (int ks = 0; ks < K / 8; ++ks) {
          FragA fa;
          FragB fb;
          load_tf32(fa, p.a + (n * kC + rt * 16) * K + ks * 8, K);
          load_tf32(fb, zs + ks * 8 * 16, 16);
          wmma::mma_sync(acc, fa, fb, acc);
        }
      }
      wmma::store_matrix_sync(p.r + (n * kC + rt * 16) * V + col0, acc, V, wmma::mem_row_major);
      wmma::store_matrix_sync(rs + rt * 16 * 16, acc, 16, wmma::mem_row_major);
    }
    __syncwarp();
    // Z = e Z + wᵀ r + a2ᵀ b2
    const float e = p.e[n];
#pragma unroll
    for (int i = 0; i < K / 16; ++i)
#pragma unroll
      for (int j = 0; j < z[i].num_elements; ++j) z[i].x[j] *= e;
    if (p.w) add_tn<K>(z, p.w + n * kC * K, rs, 16);
    if (p.a2) add_tn<K>(z, p.a2 + n * kC * K, p.b2 + n * kC * V + col0, V);
    __syncwarp();  // zs and rs are rewritten by the next chunk
  }
#pragma unroll
  for (int i = 0; i < K / 16; ++i) wmma::store_matrix_sync(p.z + (bh * K + i * 16) * V + col0, z[i], V, wmma::mem_row_major);
}

const float* ptr_or_null(const at::Tensor& x) { return x.defined() ? x.data_ptr<float>() : nullptr; }

}  // namespace

bool chunk_scan_cuda_takes(const at::Tensor& b, const at::Tensor& z0) {
  const int64_t K = z0.size(-2), V = z0.size(-1);
  return b.is_cuda() && b.scalar_type() == at::kFloat && b.size(3) == kC && V % 16 == 0 &&
         (K == 32 || K == 64 || K == 96 || K == 128);
}

ChunkScanOut chunk_scan_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w, const at::Tensor& a2,
                             const at::Tensor& b2, const at::Tensor& e, const at::Tensor& z0, bool reverse) {
  const int64_t B = b.size(0), H = b.size(1), NC = b.size(2), K = z0.size(-2), V = z0.size(-1);
  JET_CHECK(chunk_scan_cuda_takes(b, z0), "chunk_scan_cuda: unsupported K = {} / V = {}", K, V);
  JET_CHECK(a2.defined() == b2.defined(), "chunk_scan_cuda: a2 and b2 come together");
  const c10::cuda::CUDAGuard guard(b.device());
  // Contiguous fp32 copies where needed: the fragment loads want 32-byte aligned rows.
  const at::Tensor ac = a.defined() ? a.contiguous() : a, bc = b.contiguous(), wc = w.defined() ? w.contiguous() : w;
  const at::Tensor a2c = a2.defined() ? a2.contiguous() : a2, b2c = b2.defined() ? b2.contiguous() : b2;
  const at::Tensor ec = e.reshape({B * H * NC}).contiguous(), z0c = z0.contiguous();
  ChunkScanOut out;
  out.zin = at::empty({B, H, NC, K, V}, bc.options());
  out.r = at::empty_like(bc);
  out.z = at::empty({B, H, K, V}, bc.options());
  if (B * H == 0) return out;
  ScanParams p{ptr_or_null(ac), bc.data_ptr<float>(), ptr_or_null(wc), ptr_or_null(a2c), ptr_or_null(b2c),
               ec.data_ptr<float>(), z0c.data_ptr<float>(), out.zin.data_ptr<float>(), out.r.data_ptr<float>(),
               out.z.data_ptr<float>(), static_cast<int>(NC), static_cast<int>(V), reverse};
  const dim3 grid((V / 16 + kWarps - 1) / kWarps, B * H);
  auto stream = at::cuda::getCurrentCUDAStream();
  switch (K) {
    case 32: chunk_scan_kernel<32><<<grid, 32 * kWarps, 0, stream>>>(p); break;
    case 64: chunk_scan_kernel<64><<<grid, 32 * kWarps, 0, stream>>>(p); break;
    case 96: chunk_scan_kernel<96><<<grid, 32 * kWarps, 0, stream>>>(p); break;
    default: chunk_scan_kernel<128><<<grid, 32 * kWarps, 0, stream>>>(p); break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace jet::ops::detail
