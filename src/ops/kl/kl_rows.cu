// CUDA KL of logit rows (see kl_rows.h): one block per row, two passes over the row. Pass 1 keeps, per
// thread, the online log-sum-exp of z_s (m_s, l_s) and of z_t (m_t, l_t) plus A = Σ e^{z_t − m_t}(z_t − z_s),
// rescaled whenever m_t grows; the block merges the partials (warp shuffles, then shared memory) into the
// row's KL = A / l_t − lse_t + lse_s. Pass 2 writes grad_scale · (e^{z_s − lse_s} − e^{z_t − lse_t}).
// Memory-bound: 16-byte loads when V % 4 == 0; the second read of a row mostly comes from HBM again
// (chunks of rows outgrow L2), so the kernel moves 4 reads + 1 write of the row.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cmath>
#include <type_traits>

#include "core/check.h"
#include "ops/kl/kl_rows.h"

namespace jet::ops {
namespace {

constexpr int kThreads = 256;

struct Partial {
  float ms, ls, mt, lt, a;  // student max / Σ e^{z−m}; teacher max / Σ e^{z−m}; A
};

__device__ __forceinline__ void add(Partial& p, float zs, float zt) {
  if (zs > p.ms) {
    p.ls = p.ls * __expf(p.ms - zs) + 1.f;
    p.ms = zs;
  } else {
    p.ls += __expf(zs - p.ms);
  }
  if (zt > p.mt) {
    const float r = __expf(p.mt - zt);
    p.lt = p.lt * r + 1.f;
    p.a = p.a * r + (zt - zs);
    p.mt = zt;
  } else {
    const float e = __expf(zt - p.mt);
    p.lt += e;
    p.a += e * (zt - zs);
  }
}

// Scale of a partial whose max is m into the merged max M (an empty partial, m = −inf, weighs 0).
__device__ __forceinline__ float rescale(float m, float M) { return m == -INFINITY ? 0.f : __expf(m - M); }

__device__ __forceinline__ Partial merge(const Partial& x, const Partial& y) {
  Partial r;
  r.ms = fmaxf(x.ms, y.ms);
  r.ls = x.ls * rescale(x.ms, r.ms) + y.ls * rescale(y.ms, r.ms);
  r.mt = fmaxf(x.mt, y.mt);
  const float sx = rescale(x.mt, r.mt), sy = rescale(y.mt, r.mt);
  r.lt = x.lt * sx + y.lt * sy;
  r.a = x.a * sx + y.a * sy;
  return r;
}

__device__ __forceinline__ Partial shfl(const Partial& p, int lane_mask) {
  return {__shfl_xor_sync(0xffffffffu, p.ms, lane_mask), __shfl_xor_sync(0xffffffffu, p.ls, lane_mask),
          __shfl_xor_sync(0xffffffffu, p.mt, lane_mask), __shfl_xor_sync(0xffffffffu, p.lt, lane_mask),
          __shfl_xor_sync(0xffffffffu, p.a, lane_mask)};
}

template <typename G>
__device__ __forceinline__ void store(G* p, float v) {
  if constexpr (std::is_same_v<G, float>)
    *p = v;
  else
    *p = __float2bfloat16(v);
}

template <typename G>
__device__ __forceinline__ void store4(G* p, float a, float b, float c, float d) {
  if constexpr (std::is_same_v<G, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(a, b, c, d);
  } else {
    __nv_bfloat162 lo = __floats2bfloat162_rn(a, b), hi = __floats2bfloat162_rn(c, d);
    uint2 u;
    u.x = *reinterpret_cast<uint32_t*>(&lo);
    u.y = *reinterpret_cast<uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(p) = u;
  }
}

template <bool VEC, typename G>
__global__ void __launch_bounds__(kThreads)
kl_rows_kernel(const float* __restrict__ zs, const float* __restrict__ zt, float* __restrict__ kl, G* __restrict__ gz,
               int64_t V, float grad_scale) {
  const int64_t row = blockIdx.x;
  const float* s = zs + row * V;
  const float* t = zt + row * V;
  Partial p{-INFINITY, 0.f, -INFINITY, 0.f, 0.f};
  if constexpr (VEC) {
    const int64_t n4 = V / 4;
    const float4* s4 = reinterpret_cast<const float4*>(s);
    const float4* t4 = reinterpret_cast<const float4*>(t);
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < n4; i += kThreads) {
      const float4 a = s4[i], b = t4[i];
      add(p, a.x, b.x), add(p, a.y, b.y), add(p, a.z, b.z), add(p, a.w, b.w);
    }
  } else {
    for (int64_t i = threadIdx.x; i < V; i += kThreads) add(p, s[i], t[i]);
  }
#pragma unroll
  for (int m = 16; m >= 1; m /= 2) p = merge(p, shfl(p, m));
  __shared__ Partial warp_part[kThreads / 32];
  __shared__ float lse[2];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_part[warp] = p;
  __syncthreads();
  if (warp == 0) {
    Partial q = lane < kThreads / 32 ? warp_part[lane] : Partial{-INFINITY, 0.f, -INFINITY, 0.f, 0.f};
#pragma unroll
    for (int m = 16; m >= 1; m /= 2) q = merge(q, shfl(q, m));
    if (lane == 0) {
      const float lse_s = q.ms + __logf(q.ls), lse_t = q.mt + __logf(q.lt);
      kl[row] = q.a / q.lt - lse_t + lse_s;
      lse[0] = lse_s, lse[1] = lse_t;
    }
  }
  if (gz == nullptr) return;
  __syncthreads();
  const float lse_s = lse[0], lse_t = lse[1];
  G* g = gz + row * V;
  if constexpr (VEC) {
    const int64_t n4 = V / 4;
    const float4* s4 = reinterpret_cast<const float4*>(s);
    const float4* t4 = reinterpret_cast<const float4*>(t);
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < n4; i += kThreads) {
      const float4 a = s4[i], b = t4[i];
      store4(g + 4 * i, grad_scale * (__expf(a.x - lse_s) - __expf(b.x - lse_t)),
             grad_scale * (__expf(a.y - lse_s) - __expf(b.y - lse_t)),
             grad_scale * (__expf(a.z - lse_s) - __expf(b.z - lse_t)),
             grad_scale * (__expf(a.w - lse_s) - __expf(b.w - lse_t)));
    }
  } else {
    for (int64_t i = threadIdx.x; i < V; i += kThreads)
      store(g + i, grad_scale * (__expf(s[i] - lse_s) - __expf(t[i] - lse_t)));
  }
}

template <typename G>
void launch(const at::Tensor& zs, const at::Tensor& zt, at::Tensor& kl, G* gz, float grad_scale) {
  const int64_t N = zs.size(0), V = zs.size(1);
  // Rows start 16-byte aligned when V % 4 == 0 and the bases are (fresh allocations are).
  const bool vec = V % 4 == 0 && reinterpret_cast<uintptr_t>(zs.data_ptr()) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(zt.data_ptr()) % 16 == 0 &&
                   (gz == nullptr || reinterpret_cast<uintptr_t>(gz) % (4 * sizeof(G)) == 0);
  auto stream = at::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned>(N));
  if (vec)
    kl_rows_kernel<true, G><<<grid, kThreads, 0, stream>>>(zs.data_ptr<float>(), zt.data_ptr<float>(),
                                                          kl.data_ptr<float>(), gz, V, grad_scale);
  else
    kl_rows_kernel<false, G><<<grid, kThreads, 0, stream>>>(zs.data_ptr<float>(), zt.data_ptr<float>(),
                                                           kl.data_ptr<float>(), gz, V, grad_scale);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

at::Tensor kl_rows_cuda(const at::Tensor& zs, const at::Tensor& zt, double grad_scale, at::Tensor* gz,
                        at::ScalarType grad_dtype) {
  JET_CHECK(zs.is_cuda() && zs.scalar_type() == at::kFloat && zs.is_contiguous() && zt.is_contiguous(),
            "kl_rows_cuda: contiguous fp32 CUDA logits expected");
  JET_CHECK(zs.size(0) <= 0x7fffffff, "kl_rows_cuda: too many rows ({})", zs.size(0));
  const c10::cuda::CUDAGuard guard(zs.device());
  at::Tensor kl = at::empty({zs.size(0)}, zs.options());
  if (zs.size(0) == 0) {
    if (gz) *gz = at::empty(zs.sizes(), zs.options().dtype(grad_dtype));
    return kl;
  }
  if (!gz) {
    launch<float>(zs, zt, kl, nullptr, 0.f);
  } else if (grad_dtype == at::kBFloat16) {
    *gz = at::empty(zs.sizes(), zs.options().dtype(at::kBFloat16));
    launch(zs, zt, kl, reinterpret_cast<__nv_bfloat16*>(gz->data_ptr()), static_cast<float>(grad_scale));
  } else {
    JET_CHECK(grad_dtype == at::kFloat, "kl_rows_cuda: gradient dtype must be fp32 or bf16");
    *gz = at::empty(zs.sizes(), zs.options());
    launch(zs, zt, kl, gz->data_ptr<float>(), static_cast<float>(grad_scale));
  }
  return kl;
}

}  // namespace jet::ops
