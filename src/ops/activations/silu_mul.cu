// silu(gate) · up on CUDA: one elementwise kernel instead of two (SiLU, then the product), 16-byte loads; the
// inputs may be row-strided views (the two halves of a packed gate/up projection). And the packed form's backward.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/check.h"
#include "core/shape.h"
#include "ops/activations/silu_mul.h"
#include "ops/row_view.h"

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

// rows × cols (cols % V == 0) at row strides gs / us (elements) into a contiguous out; grid-stride over packs.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
silu_mul_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out, int64_t rows, int64_t cols,
                int64_t gs, int64_t us) {
  using P = Pack<T, V>;
  const int64_t per_row = cols / V, n = rows * per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = i / per_row, c = (i - r * per_row) * V;
    const P g = *reinterpret_cast<const P*>(gate + r * gs + c), u = *reinterpret_cast<const P*>(up + r * us + c);
    P o;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float x = to_f(g.v[e]);
      put(o.v[e], x / (1.f + __expf(-x)) * to_f(u.v[e]));
    }
    reinterpret_cast<P*>(out)[i] = o;
  }
}

// Calls go(dtype tag, pack width) for a and b of a's dtype: 16-byte packs when both are 16-byte aligned and every
// length in `multiples` (columns, row strides) is a multiple of the pack, else single elements.
template <typename F>
void by_width(const at::Tensor& a, const at::Tensor& b, std::initializer_list<int64_t> multiples, F&& go) {
  auto aligned = [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  auto fits = [&](int64_t v) {
    if (!aligned(a) || !aligned(b)) return false;
    for (int64_t m : multiples)
      if (m % v != 0) return false;
    return true;
  };
  if (a.scalar_type() == at::kBFloat16) {
    if (fits(8))
      go(__nv_bfloat16{}, std::integral_constant<int, 8>{});
    else
      go(__nv_bfloat16{}, std::integral_constant<int, 1>{});
  } else {
    if (fits(4))
      go(float{}, std::integral_constant<int, 4>{});
    else
      go(float{}, std::integral_constant<int, 1>{});
  }
}

// The backward of silu_mul_packed: rows × F of gu (row stride gs) and dy (row stride ds) → d(gu) rows × 2F
// contiguous: with σ = sigmoid(g), d(gate) = dy·up·σ(1 + g(1 − σ)), d(up) = dy·g·σ.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
silu_mul_packed_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ gu, T* __restrict__ dgu, int64_t rows,
                           int64_t F, int64_t ds, int64_t gs) {
  using P = Pack<T, V>;
  const int64_t per_row = F / V, n = rows * per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = i / per_row, c = (i - r * per_row) * V;
    const P d = *reinterpret_cast<const P*>(dy + r * ds + c), g = *reinterpret_cast<const P*>(gu + r * gs + c),
            u = *reinterpret_cast<const P*>(gu + r * gs + F + c);
    P dg, du;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float x = to_f(g.v[e]), dd = to_f(d.v[e]), s = 1.f / (1.f + __expf(-x));
      put(dg.v[e], dd * to_f(u.v[e]) * s * (1.f + x * (1.f - s)));
      put(du.v[e], dd * x * s);
    }
    *reinterpret_cast<P*>(dgu + r * 2 * F + c) = dg;
    *reinterpret_cast<P*>(dgu + r * 2 * F + F + c) = du;
  }
}

}  // namespace

at::Tensor silu_mul_packed_backward_cuda(const at::Tensor& dy, const at::Tensor& gu) {
  const int64_t F = gu.dim() >= 1 ? gu.size(-1) / 2 : 0;
  JET_CHECK(gu.is_cuda() && dy.is_cuda() && (gu.scalar_type() == at::kBFloat16 || gu.scalar_type() == at::kFloat) &&
                gu.size(-1) == 2 * F && dy.sizes() == gu.narrow(-1, 0, F).sizes(),
            "silu_mul_packed_backward_cuda: gu {} {} must be CUDA [..., 2F] and dy {} [..., F]", shape_str(gu.sizes()),
            c10::toString(gu.scalar_type()), shape_str(dy.sizes()));
  c10::cuda::CUDAGuard guard(gu.device());
  at::Tensor g = gu, d = dy.to(gu.scalar_type());
  int64_t gs = uniform_row_stride(g), ds = uniform_row_stride(d);
  if (gs < 0) g = g.contiguous(), gs = g.size(-1);
  if (ds < 0) d = d.contiguous(), ds = d.size(-1);
  at::Tensor dgu = at::empty(gu.sizes(), gu.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t rows = F > 0 ? d.numel() / F : 0;
  if (rows * F == 0) return dgu;
  auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t max_blocks = 8 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  auto go = [&](auto tag, auto vec) {
    using T = decltype(tag);
    constexpr int V = decltype(vec)::value;
    const int64_t n = rows * F / V;
    const int64_t blocks = std::min(max_blocks, (n + kThreads - 1) / kThreads);
    silu_mul_packed_bwd_kernel<T, V><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        reinterpret_cast<const T*>(d.data_ptr()), reinterpret_cast<const T*>(g.data_ptr()),
        reinterpret_cast<T*>(dgu.data_ptr()), rows, F, ds, gs);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  by_width(g, d, {F, gs, ds}, go);
  return dgu;
}

bool silu_mul_cuda_supports(const at::Tensor& gate, const at::Tensor& up) {
  const auto st = gate.scalar_type();
  return gate.is_cuda() && up.is_cuda() && (st == at::kBFloat16 || st == at::kFloat) && up.scalar_type() == st &&
         gate.sizes() == up.sizes();
}

at::Tensor silu_mul_cuda(const at::Tensor& gate, const at::Tensor& up) {
  JET_CHECK(silu_mul_cuda_supports(gate, up), "silu_mul_cuda: unsupported gate {} {}, up {}", shape_str(gate.sizes()),
            c10::toString(gate.scalar_type()), shape_str(up.sizes()));
  c10::cuda::CUDAGuard guard(gate.device());
  // Row-strided views (the halves of a packed gate/up projection) are read in place.
  at::Tensor g = gate, u = up;
  int64_t gs = uniform_row_stride(g), us = uniform_row_stride(u);
  if (gs < 0) g = g.contiguous(), gs = g.size(-1);
  if (us < 0) u = u.contiguous(), us = u.size(-1);
  at::Tensor out = at::empty(gate.sizes(), gate.options());
  const int64_t numel = g.numel(), cols = g.size(-1), rows = cols > 0 ? numel / cols : 0;
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
        reinterpret_cast<T*>(out.data_ptr()), rows, cols, gs, us);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  by_width(g, u, {cols, gs, us}, go);
  return out;
}

}  // namespace jet::ops
