// CUDA chunked forward of the linear-attention family (scalar decay × additive/delta), see
// linear_attention_chunk_cuda.h for the kernel split and README.md for the math. Chunk C = 64.
// Layout: every sequence is a run of tokens of one packed [Ttot, H, ·] buffer (B sequences of length
// T are Ttot = B·T with sequence b at b·T); a chunk is up to 64 tokens of one sequence. Tokens past a
// chunk's length are zero rows in shared memory (k = v = β = 0, log decay 0: no effect on S or on the
// real outputs). Matrix products are mma.sync m16n8k16 (bf16 in, fp32 accumulators) on ldmatrix
// fragments; shared-memory rows are padded by 8 bf16 so that ldmatrix rows fall on distinct banks.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "ops/linear_attention/linear_attention_chunk_cuda.h"

#include "ops/linear_attention/linear_attention_chunk_kernels.cuh"

namespace jet::ops {
namespace {

using namespace la_chunk;  // NOLINT(google-build-using-namespace): the shared kernel blocks
// ---- kernel 3: outputs, one block per (chunk, head, 128 value columns), 4 warps (warp = 16 rows) -------
template <int K>
struct OutSmem {
  static constexpr int LK = K + 8, BV = 128;
  static constexpr size_t qs = 0, ks = qs + kC * LK * sizeof(bf16), hs = ks + kC * LK * sizeof(bf16),
                          vs = hs + BV * LK * sizeof(bf16), bytes = vs + BV * kLT * sizeof(bf16);
};

template <int K>
__global__ void __launch_bounds__(128) output_kernel(Params p, Chunks m) {
  using L = OutSmem<K>;
  constexpr int LK = L::LK, BV = L::BV;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* qs = reinterpret_cast<bf16*>(smem + L::qs);  // [64][LK] q as given
  bf16* ks = reinterpret_cast<bf16*>(smem + L::ks);  // [64][LK] k as given
  bf16* hs = reinterpret_cast<bf16*>(smem + L::hs);  // [128][LK] state entering the chunk, transposed
  bf16* vs = reinterpret_cast<bf16*>(smem + L::vs);  // [128][kLT] v', transposed
  __shared__ float gam[kC], rks[kC];
  const int c = blockIdx.x, h = blockIdx.y, v0 = blockIdx.z * BV;
  const int tid = threadIdx.x, lane = tid & 31, wp = tid >> 5, H = p.H, V = p.V;
  const int g = lane >> 2, t = lane & 3, r0 = wp * 16, i0 = r0 + g, i1 = i0 + 8;
  int tok0, len;
  m.at(c, tok0, len);
  // group 0: q, k, Γ, 1/|k|
  const size_t row0 = (static_cast<size_t>(tok0) * H + h) * K;
  const int64_t HK = static_cast<int64_t>(H) * K;
  copy_tile<K / 8, 128, kC>(qs, LK, p.q + row0, HK, len, true, p.q, tid);
  copy_tile<K / 8, 128, kC>(ks, LK, p.k + row0, HK, len, true, p.k, tid);
  if (tid < kC) {
    const size_t off = static_cast<size_t>(h) * p.Ttot + tok0 + (tid < len ? tid : 0);
    cp4(gam + tid, p.gcum + off, tid < len);
    cp4(rks + tid, p.rk + off, tid < len);
  }
  cp_commit();
  const size_t cbase = (static_cast<size_t>(c) * H + h) * V;
  // group 1: the state and v' columns of this block
  copy_tile<K / 8, 128, BV>(hs, LK, p.hs + (cbase + v0) * K, K, V - v0, true, p.hs, tid);
  copy_tile<kC / 8, 128, BV>(vs, kLT, p.vn + (cbase + v0) * kC, kC, V - v0, true, p.vn, tid);
  cp_commit();
  cp_wait<1>();
  __syncthreads();

  // scale / |q| for rows i0, i1 (lanes 2r, 2r+1 hold row r0 + r).
  const float nq = row_sumsq<K>(qs, LK, r0, lane);
  const float rq = p.l2 ? p.scale * rsqrtf(nq + 1e-6f) : p.scale;
  const float rq0 = __shfl_sync(0xffffffffu, rq, 2 * g), rq1 = __shfl_sync(0xffffffffu, rq, 2 * g + 16);

  // Scores Q Kᵀ of this warp's rows (key blocks ≤ wp), then scale/|q_i|, 1/|k_j|, e^{Γi−Γj}, j ≤ i in fp32:
  // P as bf16 A fragments.
  Frag qa[K / 16];
#pragma unroll
  for (int kb = 0; kb < K / 16; ++kb) frag_a(qa[kb], qs, LK, r0, kb * 16, lane);
  Frag pa[4];
  {
    float sc[8][4] = {};
#pragma unroll
    for (int kb = 0; kb < K / 16; ++kb)
#pragma unroll
      for (int pr = 0; pr < 4; ++pr)
        if (pr <= wp) {
          Frag b;
          frag_bt(b, ks, LK, pr * 16, kb * 16, lane);
          mma2(sc[2 * pr], sc[2 * pr + 1], qa[kb], b);
        }
    const float gi0 = gam[i0], gi1 = gam[i1];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const int j = nt * 8 + 2 * t;
      float x[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int jj = j + (e & 1), i = e < 2 ? i0 : i1;
        x[e] = jj <= i ? sc[nt][e] * (e < 2 ? rq0 : rq1) * rks[jj] * __expf((e < 2 ? gi0 : gi1) - gam[jj]) : 0.f;
      }
      pa[nt >> 1][(nt & 1) * 2] = pack(x[0], x[1]);
      pa[nt >> 1][(nt & 1) * 2 + 1] = pack(x[2], x[3]);
    }
  }
  cp_wait<0>();
  __syncthreads();
  // O = diag(scale/|q| e^Γ) Q S + P v'.
  float acc[BV / 8][4] = {};
#pragma unroll
  for (int kb = 0; kb < K / 16; ++kb)
#pragma unroll
    for (int pr = 0; pr < BV / 16; ++pr) {
      Frag b;
      frag_bt(b, hs, LK, pr * 16, kb * 16, lane);
      mma2(acc[2 * pr], acc[2 * pr + 1], qa[kb], b);
    }
  const float e0 = rq0 * __expf(gam[i0]), e1 = rq1 * __expf(gam[i1]);
#pragma unroll
  for (int nt = 0; nt < BV / 8; ++nt) acc[nt][0] *= e0, acc[nt][1] *= e0, acc[nt][2] *= e1, acc[nt][3] *= e1;
#pragma unroll
  for (int jb = 0; jb < 4; ++jb)
    if (jb <= wp)
#pragma unroll
      for (int pr = 0; pr < BV / 16; ++pr) {
        Frag b;
        frag_bt(b, vs, kLT, pr * 16, jb * 16, lane);
        mma2(acc[2 * pr], acc[2 * pr + 1], pa[jb], b);
      }
#pragma unroll
  for (int nt = 0; nt < BV / 8; ++nt) {
    const int v = v0 + nt * 8 + 2 * t;
    if (v < V) {
      if (i0 < len) st32(p.o + (static_cast<size_t>(tok0 + i0) * H + h) * V + v, pack(acc[nt][0], acc[nt][1]));
      if (i1 < len) st32(p.o + (static_cast<size_t>(tok0 + i1) * H + h) * V + v, pack(acc[nt][2], acc[nt][3]));
    }
  }
}

template <int K, bool DELTA>
void run_chunked(const Params& p, const Chunks& m, int N, cudaStream_t stream) {
  const int H = p.H, V = p.V;
  KernelTimer<3> timer(stream, "JET_LA_CHUNK_PROFILE", "la_chunk", {"prep", "state", "output"});
  timer.mark();
  {
    auto kern = prep_kernel<K, DELTA>;
    set_smem(kern, PrepSmem<K>::bytes);
    kern<<<dim3(m.nct, H), 128, PrepSmem<K>::bytes, stream>>>(p, m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  timer.mark();
  {
    auto launch = [&](auto kern, int nw, size_t bytes) {
      set_smem(kern, bytes);
      const int bv = 16 * nw;
      kern<<<dim3((V + bv - 1) / bv, H, N), 32 * (nw + 1), bytes, stream>>>(p, m);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    switch (state_warps(V, H, N)) {
      case 8: launch(state_kernel<K, 8, 2, DELTA>, 8, StateSmem<K, 8, 2, DELTA>::bytes); break;
      case 4: launch(state_kernel<K, 4, 2, DELTA>, 4, StateSmem<K, 4, 2, DELTA>::bytes); break;
      default: launch(state_kernel<K, 2, 3, DELTA>, 2, StateSmem<K, 2, 3, DELTA>::bytes); break;
    }
  }
  timer.mark();
  {
    auto kern = output_kernel<K>;
    set_smem(kern, OutSmem<K>::bytes);
    kern<<<dim3(m.nct, H, (V + OutSmem<K>::BV - 1) / OutSmem<K>::BV), 128, OutSmem<K>::bytes, stream>>>(p, m);
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
  at::Tensor rk = at::empty({H, Ttot}, f32), gcum = at::empty({H, Ttot}, f32), kd = at::empty({H, Ttot}, f32);
  at::Tensor w = delta ? at::empty({Ttot, H, K}, bfo) : at::Tensor();
  at::Tensor tb = delta ? at::empty({m.nct, H, kC, kC}, bfo) : at::Tensor();
  at::Tensor hs = at::empty({m.nct, H, V, K}, bfo), vn = at::empty({m.nct, H, V, kC}, bfo);
  at::Tensor o = at::empty({B, T, H, V}, bfo), sf = at::empty({N, H, K, V}, f32);

  Params p{};
  p.q = reinterpret_cast<const bf16*>(qc.data_ptr());
  p.k = reinterpret_cast<const bf16*>(kc.data_ptr());
  p.v = reinterpret_cast<const bf16*>(vc.data_ptr());
  p.g = gc.defined() ? gc.data_ptr<float>() : nullptr;
  p.gs_t = fixed_decay ? 0 : H, p.gs_h = 1;
  p.beta = delta ? bc.data_ptr<float>() : nullptr;
  p.s0 = s0.defined() ? s0.data_ptr<float>() : nullptr;
  p.rk = rk.data_ptr<float>();
  p.gcum = gcum.data_ptr<float>();
  p.kd = kd.data_ptr<float>();
  p.w = delta ? reinterpret_cast<bf16*>(w.data_ptr()) : nullptr;
  p.tb = delta ? reinterpret_cast<bf16*>(tb.data_ptr()) : nullptr;
  p.hs = reinterpret_cast<bf16*>(hs.data_ptr());
  p.vn = reinterpret_cast<bf16*>(vn.data_ptr());
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
