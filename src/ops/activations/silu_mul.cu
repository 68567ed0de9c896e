// silu(gate) · up on CUDA: one elementwise kernel instead of two (SiLU, then the product), 16-byte loads.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "core/check.h"
#include "core/shape.h"
#include "ops/activations/silu_mul.h"

namespace jet::ops {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void put(float& o, float x) { o = x; }
__device__ __forceinline__ void put(__nv_bfloat16& o, float x) { o = __float2bfloat16(x); }

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// n packs of V elements; grid-stride.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
silu_mul_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out, int64_t n) {
  using P = Pack<T, V>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const P g = reinterpret_cast<const P*>(gate)[i], u = reinterpret_cast<const P*>(up)[i];
    P r;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float x = to_f(g.v[e]);
      put(r.v[e], x / (1.f + __expf(-x)) * to_f(u.v[e]));
    }
    reinterpret_cast<P*>(out)[i] = r;
  }
}

}  // namespace

bool silu_mul_cuda_supports(const at::Tensor& gate, const at::Tensor& up) {
  const auto st = gate.scalar_type();
  return gate.is_cuda() && up.is_cuda() && (st == at::kBFloat16 || st == at::kFloat) && up.scalar_type() == st &&
         gate.sizes() == up.sizes();
}

at::Tensor silu_mul_cuda(const at::Tensor& gate, const at::Tensor& up) {
  JET_CHECK(silu_mul_cuda_supports(gate, up), "silu_mul_cuda: unsupported gate {} {}, up {}", shape_str(gate.sizes()),
            c10::toString(gate.scalar_type()), shape_str(up.sizes()));
  c10::cuda::CUDAGuard guard(gate.device());
  const at::Tensor g = gate.contiguous(), u = up.contiguous();
  at::Tensor out = at::empty_like(g);
  const int64_t numel = g.numel();
  if (numel == 0) return out;
  auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t max_blocks = 8 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  auto go = [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const int64_t n = numel / V;
    const int64_t blocks = std::min(max_blocks, (n + kThreads - 1) / kThreads);
    silu_mul_kernel<T, V><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        reinterpret_cast<const T*>(g.data_ptr()), reinterpret_cast<const T*>(u.data_ptr()),
        reinterpret_cast<T*>(out.data_ptr()), n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  auto aligned = [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  const bool wide = aligned(g) && aligned(u);
  if (g.scalar_type() == at::kBFloat16) {
    if (wide && numel % 8 == 0)
      go(__nv_bfloat16{}, std::integral_constant<int, 8>{});
    else
      go(__nv_bfloat16{}, std::integral_constant<int, 1>{});
  } else {
    if (wide && numel % 4 == 0)
      go(float{}, std::integral_constant<int, 4>{});
    else
      go(float{}, std::integral_constant<int, 1>{});
  }
  return out;
}

}  // namespace jet::ops
