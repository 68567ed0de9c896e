// RMSNorm and residual add + RMSNorm on CUDA, one kernel each (the ATen path is ~8 kernels per norm plus
// one per residual add, which dominates a small decode step). One block per row, 16-byte loads, fp32 math:
// sum of squares in a block reduction, then a second pass over the row (still in L1/L2) that scales it.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "core/check.h"
#include "core/shape.h"
#include "ops/norms/norms.h"

namespace jet::ops {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// grid (rows), block kThreads, D % V == 0. y == nullptr: the norm of x. Else h = x + y, rounded to T, is
// written to h_out and is what the norm reads. w == nullptr: no affine weight.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ w, T* h_out,
                T* __restrict__ out, int D, float eps) {
  using P = Pack<T, V>;
  const int64_t row = blockIdx.x;
  const int n = D / V;
  const P* xp = reinterpret_cast<const P*>(x + row * D);
  const P* yp = y ? reinterpret_cast<const P*>(y + row * D) : nullptr;
  P* hp = y ? reinterpret_cast<P*>(h_out + row * D) : nullptr;
  float ss = 0.f;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    P a = xp[i];
    if (yp) {
      const P b = yp[i];
#pragma unroll
      for (int e = 0; e < V; ++e) a.v[e] = from_f<T>(to_f(a.v[e]) + to_f(b.v[e]));
      hp[i] = a;
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float f = to_f(a.v[e]);
      ss = fmaf(f, f, ss);
    }
  }
  __shared__ float part[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (lane == 0) part[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    float t = lane < kThreads / 32 ? part[lane] : 0.f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (lane == 0) part[0] = t;
  }
  __syncthreads();
  const float inv = rsqrtf(part[0] / static_cast<float>(D) + eps);
  const P* src = yp ? hp : xp;  // each thread re-reads the packs it wrote itself
  const P* wp = reinterpret_cast<const P*>(w);
  P* op = reinterpret_cast<P*>(out + row * D);
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const P a = src[i];
    P r;
    if (wp) {
      const P ww = wp[i];
#pragma unroll
      for (int e = 0; e < V; ++e) r.v[e] = from_f<T>(to_f(a.v[e]) * inv * to_f(ww.v[e]));
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) r.v[e] = from_f<T>(to_f(a.v[e]) * inv);
    }
    op[i] = r;
  }
}

bool aligned16(const at::Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

}  // namespace

bool rms_norm_cuda_supports(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight) {
  const auto st = x.scalar_type();
  if (!x.is_cuda() || (st != at::kBFloat16 && st != at::kFloat) || x.dim() < 1 || x.size(-1) < 1) return false;
  if (x.size(-1) >= (int64_t{1} << 31) || x.numel() / x.size(-1) >= (int64_t{1} << 31)) return false;
  if (y.defined() && (!y.is_cuda() || y.scalar_type() != st || y.sizes() != x.sizes())) return false;
  return !weight.defined() ||
         (weight.is_cuda() && weight.scalar_type() == st && weight.dim() == 1 && weight.size(0) == x.size(-1));
}

std::pair<at::Tensor, at::Tensor> rms_norm_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight,
                                                double eps) {
  JET_CHECK(rms_norm_cuda_supports(x, y, weight), "rms_norm_cuda: unsupported x {} {}, y {}, weight {}",
            shape_str(x.sizes()), c10::toString(x.scalar_type()), y.defined() ? shape_str(y.sizes()) : "none",
            weight.defined() ? shape_str(weight.sizes()) : "none");
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), yc = y.defined() ? y.contiguous() : y,
                   wc = weight.defined() ? weight.contiguous() : weight;
  at::Tensor h = y.defined() ? at::empty_like(xc) : at::Tensor(), out = at::empty_like(xc);
  const int64_t D = x.size(-1), rows = x.numel() / D;
  if (rows == 0) return {h, out};
  auto stream = at::cuda::getCurrentCUDAStream();
  auto go = [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    auto P = [](const at::Tensor& t) { return t.defined() ? reinterpret_cast<T*>(t.data_ptr()) : nullptr; };
    rms_norm_kernel<T, V><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        P(xc), P(yc), P(wc), P(h), P(out), static_cast<int>(D), static_cast<float>(eps));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  const bool wide = aligned16(xc) && aligned16(yc) && aligned16(wc);
  if (x.scalar_type() == at::kBFloat16) {
    if (wide && D % 8 == 0)
      go(__nv_bfloat16{}, std::integral_constant<int, 8>{});
    else
      go(__nv_bfloat16{}, std::integral_constant<int, 1>{});
  } else {
    if (wide && D % 4 == 0)
      go(float{}, std::integral_constant<int, 4>{});
    else
      go(float{}, std::integral_constant<int, 1>{});
  }
  return {h, out};
}

}  // namespace jet::ops
