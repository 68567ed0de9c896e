// Fused one-token step of the linear-attention family on CUDA (decode). Memory-bound: the state
// [B, H, K, V] fp32 is read and written once. One block handles (sequence b, head h, 32·VEC value
// columns); its warps split the K rows, each lane owns VEC consecutive columns (VEC = 4: one 128-bit
// load/store per state row, 512 contiguous bytes per warp, more bytes in flight per thread), and the
// columns' rows stay in registers between the "read Sᵀk" and the "write S, read Sᵀq" halves.
// The JetBlock step is two launches: a small prologue kernel (SiLU, dynamic conv step, gates → fp32 q, k,
// v, g, β) and this same state kernel; fused into one, the prologue held up the wider (VEC = 4) blocks.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cstdlib>
#include <string>

#include "core/check.h"
#include "core/shape.h"
#include "ops/linear_attention/linear_attention_step_cuda.h"

namespace jet::ops {
namespace {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// VEC consecutive fp32 values: one 128-bit access for VEC = 4.
template <int VEC>
struct alignas(VEC == 4 ? 16 : 4) Vec {
  float x[VEC];
  __device__ __forceinline__ void load(const float* p) {
    if constexpr (VEC == 4) {
      const float4 t = *reinterpret_cast<const float4*>(p);
      x[0] = t.x, x[1] = t.y, x[2] = t.z, x[3] = t.w;
    } else {
#pragma unroll
      for (int e = 0; e < VEC; ++e) x[e] = p[e];
    }
  }
  __device__ __forceinline__ void save(float* p) const {
    if constexpr (VEC == 4) {
      *reinterpret_cast<float4*>(p) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
#pragma unroll
      for (int e = 0; e < VEC; ++e) p[e] = x[e];
    }
  }
};

// Sums x over the block's NW warps for each of this lane's VEC columns; every thread gets the totals.
template <int NW, int VEC>
__device__ __forceinline__ Vec<VEC> sum_over_warps(Vec<VEC> x, Vec<VEC> (*red)[32], int w, int lane) {
  red[w][lane] = x;
  __syncthreads();
  Vec<VEC> t;
#pragma unroll
  for (int e = 0; e < VEC; ++e) t.x[e] = 0.f;
#pragma unroll
  for (int i = 0; i < NW; ++i)
#pragma unroll
    for (int e = 0; e < VEC; ++e) t.x[e] += red[i][lane].x[e];
  __syncthreads();
  return t;
}

__device__ __forceinline__ float silu(float x) { return x / (1.f + __expf(-x)); }
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }

// Warps per block: 4 with one column per lane, 8 with four (fewer state rows per thread).
template <int VEC>
constexpr int step_warps() { return VEC == 1 ? 4 : 8; }

// One block per (sequence b, head h, 32·VEC value columns); each lane owns VEC consecutive columns (a
// 128-bit access per state row for VEC = 4, so a warp moves 512 contiguous bytes per row), the NW warps
// split the K rows. q, k, v in TI (contiguous [B, H, ·]), o in TO.
template <int K, int VEC, StepDecay DECAY, bool DELTA, typename TI, typename TO>
__global__ void __launch_bounds__(32 * step_warps<VEC>())
linear_attention_step_kernel(const TI* __restrict__ q, const TI* __restrict__ k, const TI* __restrict__ v,
                             const float* __restrict__ g, const float* __restrict__ beta,
                             float* __restrict__ S, TO* __restrict__ o, int H, int V, float scale, bool l2) {
  constexpr int NW = step_warps<VEC>();
  constexpr int R = K / NW;  // state rows per warp (and per thread)
  const int b = blockIdx.z, h = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int j = (blockIdx.x * 32 + lane) * VEC;  // first of this lane's columns (V % VEC == 0)
  const bool valid = j < V;
  const size_t bh = static_cast<size_t>(b) * H + h;

  // The state loads go first: nothing below needs them until q/k are in shared memory, so their latency
  // overlaps those loads (the columns' rows then stay in registers for both halves of the update).
  float* Sp = S + bh * K * V + j;
  Vec<VEC> s[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (valid) {
      s[r].load(Sp + static_cast<size_t>(w * R + r) * V);
    } else {
#pragma unroll
      for (int e = 0; e < VEC; ++e) s[r].x[e] = 0.f;
    }
  }

  __shared__ float sq[K], sk[K], sdecay[K];
  __shared__ Vec<VEC> red[NW][32];
  __shared__ float inv_norm[2];
  for (int i = threadIdx.x; i < K; i += blockDim.x) {
    sq[i] = to_f(q[bh * K + i]);
    sk[i] = to_f(k[bh * K + i]);
    if constexpr (DECAY == StepDecay::vector) sdecay[i] = __expf(g[bh * K + i]);
  }
  __syncthreads();
  if (w == 0) {
    float nq = 0.f, nk = 0.f;
    for (int i = lane; i < K; i += 32) nq += sq[i] * sq[i], nk += sk[i] * sk[i];
    nq = warp_sum(nq), nk = warp_sum(nk);
    if (lane == 0) {
      inv_norm[0] = l2 ? rsqrtf(nq + 1e-6f) * scale : scale;
      inv_norm[1] = l2 ? rsqrtf(nk + 1e-6f) : 1.f;
    }
  }
  __syncthreads();
  const float qs = inv_norm[0], ks = inv_norm[1];
  float decay = 1.f, bt = 0.f;
  if constexpr (DECAY == StepDecay::scalar) decay = __expf(g[bh]);
  if constexpr (DELTA) bt = beta[bh];

  Vec<VEC> kv;
#pragma unroll
  for (int e = 0; e < VEC; ++e) kv.x[e] = 0.f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = w * R + r;
    float d = 1.f;
    if constexpr (DECAY == StepDecay::scalar) d = decay;
    if constexpr (DECAY == StepDecay::vector) d = sdecay[i];
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      if constexpr (DECAY != StepDecay::none) s[r].x[e] *= d;
      if constexpr (DELTA) kv.x[e] += sk[i] * s[r].x[e];
    }
  }
  Vec<VEC> u;
#pragma unroll
  for (int e = 0; e < VEC; ++e) u.x[e] = valid ? to_f(v[bh * V + j + e]) : 0.f;
  if constexpr (DELTA) {
    const Vec<VEC> read = sum_over_warps<NW, VEC>(kv, red, w, lane);
#pragma unroll
    for (int e = 0; e < VEC; ++e) u.x[e] = bt * (u.x[e] - ks * read.x[e]);
  }
  Vec<VEC> acc;
#pragma unroll
  for (int e = 0; e < VEC; ++e) acc.x[e] = 0.f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = w * R + r;
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      s[r].x[e] += ks * sk[i] * u.x[e];
      acc.x[e] += sq[i] * s[r].x[e];
    }
    if (valid) s[r].save(Sp + static_cast<size_t>(i) * V);
  }
  acc = sum_over_warps<NW, VEC>(acc, red, w, lane);
  if (valid && w == 0) {
#pragma unroll
    for (int e = 0; e < VEC; ++e) store(o + bh * V + j + e, acc.x[e] * qs);
  }
}

// What one step launch needs (q, k, v of type TI, o of type TO; g, beta null where unused).
struct StepArgs {
  const void *q, *k, *v;
  const float *g, *beta;
  float* S;
  void* o;
  int B, H, V;
  float scale;
  bool l2;
};

template <int K, int VEC, StepDecay D, bool DELTA, typename TI, typename TO>
void launch_one(const StepArgs& a) {
  dim3 grid((a.V + 32 * VEC - 1) / (32 * VEC), a.H, a.B), block(32 * step_warps<VEC>());
  linear_attention_step_kernel<K, VEC, D, DELTA, TI, TO><<<grid, block, 0, at::cuda::getCurrentCUDAStream()>>>(
      static_cast<const TI*>(a.q), static_cast<const TI*>(a.k), static_cast<const TI*>(a.v), a.g, a.beta, a.S,
      static_cast<TO*>(a.o), a.H, a.V, a.scale, a.l2);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// GDN_ONLY: just the gated delta rule (scalar decay, delta), the one variant the JetBlock step needs.
template <int K, int VEC, typename TI, typename TO, bool GDN_ONLY>
void launch_variant(const StepArgs& a, StepDecay decay, bool delta) {
  if constexpr (GDN_ONLY) {
    launch_one<K, VEC, StepDecay::scalar, true, TI, TO>(a);
  } else {
    switch (decay) {
      case StepDecay::none:
        return delta ? launch_one<K, VEC, StepDecay::none, true, TI, TO>(a) : launch_one<K, VEC, StepDecay::none, false, TI, TO>(a);
      case StepDecay::scalar:
        return delta ? launch_one<K, VEC, StepDecay::scalar, true, TI, TO>(a) : launch_one<K, VEC, StepDecay::scalar, false, TI, TO>(a);
      case StepDecay::vector:
        return delta ? launch_one<K, VEC, StepDecay::vector, true, TI, TO>(a) : launch_one<K, VEC, StepDecay::vector, false, TI, TO>(a);
    }
  }
}

// Four columns per lane (128-bit state rows) where V allows it and the rows fit in registers:
// V % 4 == 0, V ≥ 128, 64 ≤ K ≤ 128; else one column per lane. JET_LA_STEP_VEC=1 in the environment
// forces one column per lane (a benchmark knob: bench_linear_attention_step times both layouts).
template <int K, typename TI, typename TO, bool GDN_ONLY>
void launch_vec(const StepArgs& a, StepDecay decay, bool delta) {
  static const bool scalar_only = [] {
    const char* e = std::getenv("JET_LA_STEP_VEC");
    return e && std::string(e) == "1";
  }();
  if constexpr (K >= 64 && K <= 128)
    if (a.V % 4 == 0 && a.V >= 128 && !scalar_only) return launch_variant<K, 4, TI, TO, GDN_ONLY>(a, decay, delta);
  launch_variant<K, 1, TI, TO, GDN_ONLY>(a, decay, delta);
}

template <typename TI, typename TO, bool GDN_ONLY = false>
void dispatch_k(int K, const StepArgs& a, StepDecay decay, bool delta) {
  switch (K) {
    case 16: return launch_vec<16, TI, TO, GDN_ONLY>(a, decay, delta);
    case 32: return launch_vec<32, TI, TO, GDN_ONLY>(a, decay, delta);
    case 64: return launch_vec<64, TI, TO, GDN_ONLY>(a, decay, delta);
    case 96: return launch_vec<96, TI, TO, GDN_ONLY>(a, decay, delta);
    case 128: return launch_vec<128, TI, TO, GDN_ONLY>(a, decay, delta);
    case 192: return launch_vec<192, TI, TO, GDN_ONLY>(a, decay, delta);
    case 256: return launch_vec<256, TI, TO, GDN_ONLY>(a, decay, delta);
    default: JET_FAIL("linear_attention_step_cuda: head dim K={} not supported (16/32/64/96/128/192/256)", K);
  }
}

// JetBlock's prologue for one decode token, one thread per item of a row b (blockIdx.y): the first 2·H·K
// items are SiLU(q), SiLU(k); the next C = H·V the dynamic conv step of one channel (window = (tail, raw v),
// then the tail shifts in place); the last H the gates β = σ(b), g = −exp(A_log)·softplus(a + dt_bias).
// Inputs are rows with strides ld* (views into the fused projection output); the outputs are fp32 and
// contiguous: qo, ko [B, H, K], vo [B, C], go, bo [B, H] (the step kernel's q, k, v, g, β).
template <typename T>
struct JetPrologue {
  const T *q, *k, *v, *kernels, *a, *b;  // kernels [B, C, W] contiguous
  T* tail;                               // [B, C, W−1], in place
  const float *A_log, *dt_bias;          // [H]
  float *qo, *ko, *vo, *go, *bo;
  int H, HK, C, W;
  int64_t ldq, ldk, ldv, lda, ldb;
};

template <typename T>
__global__ void __launch_bounds__(256) jet_block_prologue_kernel(JetPrologue<T> p) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t b = blockIdx.y;
  if (i < 2 * p.HK) {
    const bool is_k = i >= p.HK;
    const int e = is_k ? i - p.HK : i;
    const float x = to_f(is_k ? p.k[b * p.ldk + e] : p.q[b * p.ldq + e]);
    (is_k ? p.ko : p.qo)[b * p.HK + e] = silu(x);
  } else if (i < 2 * p.HK + p.C) {
    const int c = i - 2 * p.HK;
    const int64_t bc = b * p.C + c;
    const T* kc = p.kernels + bc * p.W;
    T* tc = p.tail + bc * (p.W - 1);
    const float x = to_f(p.v[b * p.ldv + c]);
    float acc = to_f(kc[p.W - 1]) * x;
    for (int t = 0; t < p.W - 1; ++t) acc += to_f(kc[t]) * to_f(tc[t]);
    for (int t = 0; t + 1 < p.W - 1; ++t) tc[t] = tc[t + 1];
    if (p.W > 1) store(tc + p.W - 2, x);
    p.vo[bc] = silu(acc);
  } else if (i < 2 * p.HK + p.C + p.H) {
    const int h = i - 2 * p.HK - p.C;
    p.go[b * p.H + h] = -__expf(p.A_log[h]) * softplus(to_f(p.a[b * p.lda + h]) + p.dt_bias[h]);
    p.bo[b * p.H + h] = 1.f / (1.f + __expf(-to_f(p.b[b * p.ldb + h])));
  }
}

// JetBlock's output gate for one token (or B·T tokens of a prefill): one block per (b, h) row of V values.
template <typename T>
__global__ void __launch_bounds__(128)
gated_rms_norm_step_kernel(const T* __restrict__ o, const T* __restrict__ gate, const float* __restrict__ weight,
                           T* __restrict__ y, int H, int V, int64_t ldg, float eps) {
  const int64_t b = blockIdx.x;  // rows on x: a prefill passes B·T rows (more than grid y's 65535)
  const int h = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const T* orow = o + (static_cast<size_t>(b) * H + h) * V;
  const T* grow = gate + b * ldg + static_cast<int64_t>(h) * V;
  T* yrow = y + (static_cast<size_t>(b) * H + h) * V;
  float ss = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) ss += to_f(orow[j]) * to_f(orow[j]);
  __shared__ float part[4];
  ss = warp_sum(ss);
  if (lane == 0) part[w] = ss;
  __syncthreads();
  const float r = rsqrtf((part[0] + part[1] + part[2] + part[3]) / V + eps);
  for (int j = threadIdx.x; j < V; j += blockDim.x) store(yrow + j, to_f(orow[j]) * r * weight[j] * silu(to_f(grow[j])));
}
}  // namespace

at::Tensor linear_attention_step_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& g, const at::Tensor& beta, at::Tensor& state,
                                      StepDecay decay, double scale, bool qk_l2norm) {
  JET_CHECK(q.is_cuda() && q.dim() == 3, "linear_attention_step_cuda: q must be a CUDA [B, H, K] tensor");
  const int64_t B = q.size(0), H = q.size(1), K = q.size(2), V = v.size(-1);
  JET_CHECK(k.sizes() == q.sizes(), "linear_attention_step_cuda: k {} != q {}", shape_str(k.sizes()), shape_str(q.sizes()));
  JET_CHECK(v.dim() == 3 && v.size(0) == B && v.size(1) == H, "linear_attention_step_cuda: v must be [B, H, V]");
  JET_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type() &&
                (q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16),
            "linear_attention_step_cuda: q, k, v must share dtype fp32 or bf16");
  JET_CHECK(B <= 65535 && H <= 65535, "linear_attention_step_cuda: at most 65535 sequences and heads, got {}, {}", B, H);
  JET_CHECK(state.scalar_type() == at::kFloat && state.is_contiguous() &&
                state.sizes() == at::IntArrayRef({B, H, K, V}),
            "linear_attention_step_cuda: state must be contiguous fp32 [B, H, K, V]");
  if (decay == StepDecay::scalar)
    JET_CHECK(g.defined() && g.scalar_type() == at::kFloat && g.numel() == B * H,
              "linear_attention_step_cuda: scalar decay needs fp32 g [B, H]");
  if (decay == StepDecay::vector)
    JET_CHECK(g.defined() && g.scalar_type() == at::kFloat && g.numel() == B * H * K,
              "linear_attention_step_cuda: vector decay needs fp32 g [B, H, K]");
  if (beta.defined())
    JET_CHECK(beta.scalar_type() == at::kFloat && beta.numel() == B * H,
              "linear_attention_step_cuda: beta must be fp32 [B, H]");
  c10::cuda::CUDAGuard guard(q.device());
  auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  auto gc = g.defined() ? g.contiguous() : g, bc = beta.defined() ? beta.contiguous() : beta;
  auto o = at::empty({B, H, V}, v.options());
  if (o.numel() == 0) return o;
  const StepArgs a{qc.data_ptr(), kc.data_ptr(), vc.data_ptr(), gc.defined() ? gc.data_ptr<float>() : nullptr,
                   bc.defined() ? bc.data_ptr<float>() : nullptr, state.data_ptr<float>(), o.data_ptr(),
                   static_cast<int>(B), static_cast<int>(H), static_cast<int>(V), static_cast<float>(scale), qk_l2norm};
  if (q.scalar_type() == at::kFloat)
    dispatch_k<float, float>(K, a, decay, beta.defined());
  else
    dispatch_k<__nv_bfloat16, __nv_bfloat16>(K, a, decay, beta.defined());
  return o;
}

at::Tensor jet_block_step_cuda(const at::Tensor& q_raw, const at::Tensor& k_raw, const at::Tensor& v_raw,
                               const at::Tensor& kernels, at::Tensor& tail, const at::Tensor& a_raw,
                               const at::Tensor& b_raw, const at::Tensor& A_log, const at::Tensor& dt_bias,
                               at::Tensor& state, double scale) {
  JET_CHECK(q_raw.is_cuda() && q_raw.dim() == 3, "jet_block_step_cuda: q must be a CUDA [B, H, K] tensor");
  const int64_t B = q_raw.size(0), H = q_raw.size(1), K = q_raw.size(2);
  JET_CHECK(state.scalar_type() == at::kFloat && state.is_contiguous() && state.dim() == 4 &&
                state.size(0) == B && state.size(1) == H && state.size(2) == K,
            "jet_block_step_cuda: state {} must be contiguous fp32 [B, H, K, V]", shape_str(state.sizes()));
  JET_CHECK(B <= 65535 && H <= 65535, "jet_block_step_cuda: at most 65535 sequences and heads, got {}, {}", B, H);
  const int64_t V = state.size(3), C = H * V, W = kernels.size(-1);
  const auto dt = q_raw.scalar_type();
  JET_CHECK(dt == at::kFloat || dt == at::kBFloat16, "jet_block_step_cuda: dtype must be fp32 or bf16");
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&k_raw, &v_raw, &kernels, &tail, &a_raw, &b_raw})
    JET_CHECK(t->scalar_type() == dt && t->is_cuda(), "jet_block_step_cuda: all inputs must share q's dtype and device");
  JET_CHECK(k_raw.sizes() == q_raw.sizes(), "jet_block_step_cuda: k {} != q {}", shape_str(k_raw.sizes()),
            shape_str(q_raw.sizes()));
  JET_CHECK(v_raw.numel() == B * C && kernels.numel() == B * C * W,
            "jet_block_step_cuda: v [B, H*V] and kernels [B, H*V, W] do not match the state");
  JET_CHECK(W >= 1 && tail.is_contiguous() && tail.numel() == B * C * (W - 1),
            "jet_block_step_cuda: tail must be contiguous [B, H*V, W-1]");
  JET_CHECK(a_raw.numel() == B * H && b_raw.numel() == B * H, "jet_block_step_cuda: a, b must be [B, H]");
  JET_CHECK(A_log.numel() == H && dt_bias.numel() == H && A_log.scalar_type() == at::kFloat &&
                dt_bias.scalar_type() == at::kFloat,
            "jet_block_step_cuda: A_log and dt_bias must be fp32 [H]");
  c10::cuda::CUDAGuard guard(q_raw.device());
  // Rows may be views into one wider matrix (the fused projection): only the inner layout must be dense.
  auto rows = [](const at::Tensor& t) {
    bool dense = t.stride(-1) == 1;
    for (int64_t d = t.dim() - 2, n = t.size(-1); d >= 1; n *= t.size(d), --d) dense = dense && t.stride(d) == n;
    return dense ? t : t.contiguous();
  };
  auto qc = rows(q_raw), kc = rows(k_raw), vc = rows(v_raw.reshape({B, C})), ac = rows(a_raw.reshape({B, H})),
       bc = rows(b_raw.reshape({B, H}));
  auto kern = kernels.contiguous(), Al = A_log.contiguous(), db = dt_bias.contiguous();
  // The prologue's fp32 outputs in one buffer: q, k [B, H, K], v [B, H·V], g, β [B, H].
  const int64_t HK = H * K;
  auto buf = at::empty({B * (2 * HK + C + 2 * H)}, q_raw.options().dtype(at::kFloat));
  float* const qo = buf.data_ptr<float>();
  float *const ko = qo + B * HK, *const vo = ko + B * HK, *const go = vo + B * C, *const bo = go + B * H;
  auto o = at::empty({B, H, V}, q_raw.options());
  if (o.numel() == 0) return o;
  auto stream = at::cuda::getCurrentCUDAStream();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    auto in = [](const at::Tensor& t) { return reinterpret_cast<const T*>(t.data_ptr()); };
    const JetPrologue<T> p{in(qc), in(kc), in(vc), in(kern), in(ac), in(bc), reinterpret_cast<T*>(tail.data_ptr()),
                           Al.data_ptr<float>(), db.data_ptr<float>(), qo, ko, vo, go, bo,
                           static_cast<int>(H), static_cast<int>(HK), static_cast<int>(C), static_cast<int>(W),
                           qc.stride(0), kc.stride(0), vc.stride(0), ac.stride(0), bc.stride(0)};
    const dim3 grid(static_cast<unsigned>((2 * HK + C + H + 255) / 256), static_cast<unsigned>(B));
    jet_block_prologue_kernel<T><<<grid, 256, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const StepArgs a{qo, ko, vo, go, bo, state.data_ptr<float>(), o.data_ptr(), static_cast<int>(B),
                     static_cast<int>(H), static_cast<int>(V), static_cast<float>(scale), true};
    dispatch_k<float, T, /*GDN_ONLY=*/true>(K, a, StepDecay::scalar, true);
  };
  if (dt == at::kFloat)
    run(float{});
  else
    run(__nv_bfloat16{});
  return o;
}

at::Tensor gated_rms_norm_step_cuda(const at::Tensor& o, const at::Tensor& gate, const at::Tensor& weight,
                                     double eps) {
  JET_CHECK(o.is_cuda() && o.dim() == 3 && o.is_contiguous(), "gated_rms_norm_step_cuda: o must be contiguous CUDA [B, H, V]");
  const int64_t B = o.size(0), H = o.size(1), V = o.size(2);
  JET_CHECK(gate.dim() == 2 && gate.size(0) == B && gate.size(1) == H * V && gate.stride(1) == 1 &&
                gate.scalar_type() == o.scalar_type() && gate.device() == o.device(),
            "gated_rms_norm_step_cuda: gate {} must be [{}, {}] rows (unit inner stride) in o's dtype",
            shape_str(gate.sizes()), B, H * V);
  JET_CHECK(weight.scalar_type() == at::kFloat && weight.numel() == V && weight.is_contiguous(),
            "gated_rms_norm_step_cuda: weight must be fp32 [{}]", V);
  JET_CHECK(o.scalar_type() == at::kFloat || o.scalar_type() == at::kBFloat16,
            "gated_rms_norm_step_cuda: dtype must be fp32 or bf16");
  c10::cuda::CUDAGuard guard(o.device());
  auto y = at::empty({B, H * V}, o.options());
  if (B == 0) return y;
  dim3 grid(static_cast<unsigned>(B), H), block(128);
  auto stream = at::cuda::getCurrentCUDAStream();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    gated_rms_norm_step_kernel<T><<<grid, block, 0, stream>>>(
        reinterpret_cast<const T*>(o.data_ptr()), reinterpret_cast<const T*>(gate.data_ptr()), weight.data_ptr<float>(),
        reinterpret_cast<T*>(y.data_ptr()), H, V, gate.stride(0), static_cast<float>(eps));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (o.scalar_type() == at::kFloat)
    run(float{});
  else
    run(__nv_bfloat16{});
  return y;
}

}  // namespace jet::ops
