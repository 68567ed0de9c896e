// RMSNorm and residual add + RMSNorm on CUDA, one kernel each (the ATen path is ~8 kernels per norm plus
// one per residual add, which dominates a small decode step). One block per row, 16-byte loads, fp32 math:
// sum of squares in a block reduction, then a second pass over the row (still in L1/L2) that scales it.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "ops/bf16.cuh"
#include "ops/norms/norms.h"

namespace jet::ops {
namespace {

constexpr int kThreads = 256;

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

// Gated RMSNorm, norm first (norms.h): one warp per row of V channels, lane l holding channels l + 32·j (j < CPL,
// so every load of the warp is 32 consecutive elements), fp32 math. A row (m, h) of the [M, H, V] views starts at
// m·s0 + h·s1 (the gate may be a column slice of a wider GEMM output); y, dx, dgate are written contiguous.
constexpr int kRowsPerBlock = kThreads / 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Loads the lane's channels of row xr into xv (0 past V) and returns the row's 1/sqrt(mean(x²) + eps).
template <typename T, int CPL>
__device__ __forceinline__ float load_row(const T* xr, int lane, int V, float eps, float (&xv)[CPL]) {
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < CPL; ++j) {
    const int c = lane + 32 * j;
    xv[j] = c < V ? to_f(xr[c]) : 0.f;
    ss = fmaf(xv[j], xv[j], ss);
  }
  return rsqrtf(warp_sum(ss) / static_cast<float>(V) + eps);
}

struct RowViews {
  int64_t rows, H;
  int64_t xs0, xs1, zs0, zs1, gs0, gs1;  // row strides of x, gate, dy
  __device__ int64_t offset(int64_t r, int64_t s0, int64_t s1) const { return (r / H) * s0 + (r % H) * s1; }
};

template <typename T, int CPL>
__global__ void __launch_bounds__(kThreads)
gated_rms_norm_fwd_kernel(const T* __restrict__ x, const T* __restrict__ z, const float* __restrict__ w,
                          T* __restrict__ y, RowViews rv, int V, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * kRowsPerBlock;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5); r < rv.rows; r += nwarps) {
    const T* xr = x + rv.offset(r, rv.xs0, rv.xs1);
    const T* zr = z + rv.offset(r, rv.zs0, rv.zs1);
    float xv[CPL];
    const float inv = load_row(xr, lane, V, eps, xv);
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      if (c < V) {
        const float g = to_f(zr[c]);
        y[r * V + c] = from_f<T>(xv[j] * inv * w[c] * (g / (1.f + __expf(-g))));
      }
    }
  }
}

// With n = x·inv, s = SiLU(z), σ = sigmoid(z): dz = dy·n·w·σ(1 + z(1 − σ)); dn = dy·w·s; dx = inv·(dn − n·mean(dn·n));
// dw = Σ_rows dy·n·s, summed per block over its warps' rows into dw_part[block, V] (the host sums the blocks).
// GATED = false: the plain RMSNorm's backward (s = 1, no z, no dz).
template <typename T, int CPL, bool GATED>
__global__ void __launch_bounds__(kThreads)
rms_norm_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ z,
                    const float* __restrict__ w, T* __restrict__ dx, T* __restrict__ dz, float* __restrict__ dw_part,
                    RowViews rv, int V, float eps) {
  __shared__ float part[kRowsPerBlock][CPL * 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * kRowsPerBlock;
  float dw[CPL];
#pragma unroll
  for (int j = 0; j < CPL; ++j) dw[j] = 0.f;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp; r < rv.rows; r += nwarps) {
    const T* xr = x + rv.offset(r, rv.xs0, rv.xs1);
    const T* zr = GATED ? z + rv.offset(r, rv.zs0, rv.zs1) : nullptr;
    const T* gr = dy + rv.offset(r, rv.gs0, rv.gs1);
    float xv[CPL], dn[CPL];
    const float inv = load_row(xr, lane, V, eps, xv);
    float dot = 0.f;
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      dn[j] = 0.f;
      if (c < V) {
        const float d = to_f(gr[c]), wc = w ? w[c] : 1.f, n = xv[j] * inv;
        float s = 1.f;
        if constexpr (GATED) {
          const float g = to_f(zr[c]), sig = 1.f / (1.f + __expf(-g));
          s = g * sig;
          dz[r * V + c] = from_f<T>(d * n * wc * sig * (1.f + g * (1.f - sig)));
        }
        dn[j] = d * wc * s;
        dot = fmaf(dn[j], n, dot);
        dw[j] = fmaf(d * n, s, dw[j]);
      }
    }
    const float mean_dot = warp_sum(dot) / static_cast<float>(V);
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      if (c < V) dx[r * V + c] = from_f<T>(inv * (dn[j] - xv[j] * inv * mean_dot));
    }
  }
  if (!dw_part) return;
#pragma unroll
  for (int j = 0; j < CPL; ++j) part[warp][lane + 32 * j] = dw[j];
  __syncthreads();
  for (int c = threadIdx.x; c < V; c += kThreads) {
    float t = 0.f;
#pragma unroll
    for (int k = 0; k < kRowsPerBlock; ++k) t += part[k][c];
    dw_part[static_cast<int64_t>(blockIdx.x) * V + c] = t;
  }
}

// x [..., V] as [M, H, V] with a unit channel stride (a view where the leading dimensions allow, else a copy).
at::Tensor rows_view(const at::Tensor& t) {
  at::Tensor r = t.dim() == 1 ? t.view({1, 1, t.size(0)}) : t.dim() == 2 ? t.unsqueeze(0) : t.flatten(0, -3);
  return r.stride(2) == 1 ? r : r.contiguous();
}

// Calls f(CPL tag) with the smallest channels-per-lane count that covers V (≤ kGatedRmsNormMaxWidth).
template <typename F>
void with_cpl(int64_t V, F&& f) {
  if (V <= 32) f(std::integral_constant<int, 1>{});
  else if (V <= 64) f(std::integral_constant<int, 2>{});
  else if (V <= 128) f(std::integral_constant<int, 4>{});
  else if (V <= 256) f(std::integral_constant<int, 8>{});
  else if (V <= 512) f(std::integral_constant<int, 16>{});
  else f(std::integral_constant<int, 32>{});
}

unsigned row_blocks(int64_t rows) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min((rows + kRowsPerBlock - 1) / kRowsPerBlock, sms * 8)));
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

bool gated_rms_norm_cuda_supports(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight) {
  const auto st = x.scalar_type();
  if (!x.is_cuda() || (st != at::kBFloat16 && st != at::kFloat) || x.dim() < 1) return false;
  const int64_t V = x.size(-1);
  if (V < 1 || V > kGatedRmsNormMaxWidth || x.numel() / V >= (int64_t{1} << 31)) return false;
  if (!gate.defined() || !gate.is_cuda() || gate.scalar_type() != st || gate.sizes() != x.sizes()) return false;
  return weight.defined() && weight.is_cuda() && (weight.scalar_type() == at::kFloat || weight.scalar_type() == st) &&
         weight.dim() == 1 && weight.size(0) == V;
}

namespace {

void check_gated(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, const char* who) {
  JET_CHECK(gated_rms_norm_cuda_supports(x, gate, weight), "{}: unsupported x {} {}, gate {}, weight {}", who,
            shape_str(x.sizes()), c10::toString(x.scalar_type()), gate.defined() ? shape_str(gate.sizes()) : "none",
            weight.defined() ? shape_str(weight.sizes()) : "none");
}

RowViews row_views(const at::Tensor& x3, const at::Tensor& z3, const at::Tensor& g3) {
  return {x3.size(0) * x3.size(1), x3.size(1), x3.stride(0), x3.stride(1), z3.stride(0), z3.stride(1),
          g3.defined() ? g3.stride(0) : 0, g3.defined() ? g3.stride(1) : 0};
}

}  // namespace

at::Tensor gated_rms_norm_cuda(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps) {
  check_gated(x, gate, weight, "gated_rms_norm_cuda");
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor x3 = rows_view(x), z3 = rows_view(gate), w = weight.to(at::kFloat).contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const RowViews rv = row_views(x3, z3, at::Tensor());
  const int64_t V = x.size(-1);
  if (rv.rows == 0) return y;
  auto stream = at::cuda::getCurrentCUDAStream();
  with_cpl(V, [&](auto cpl) {
    constexpr int CPL = decltype(cpl)::value;
    auto go = [&](auto tag) {
      using T = decltype(tag);
      gated_rms_norm_fwd_kernel<T, CPL><<<row_blocks(rv.rows), kThreads, 0, stream>>>(
          reinterpret_cast<const T*>(x3.data_ptr()), reinterpret_cast<const T*>(z3.data_ptr()), w.data_ptr<float>(),
          reinterpret_cast<T*>(y.data_ptr()), rv, static_cast<int>(V), static_cast<float>(eps));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (x.scalar_type() == at::kBFloat16) go(__nv_bfloat16{}); else go(float{});
  });
  return y;
}

namespace {

// The backward kernel for dy, x (and gate when GATED) of one [..., V] shape: {dx, dgate (GATED), dweight} with dx, dgate
// contiguous; weight undefined = none (no dweight).
template <bool GATED>
std::vector<at::Tensor> norm_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& gate,
                                      const at::Tensor& weight, double eps) {
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor x3 = rows_view(x), z3 = GATED ? rows_view(gate) : x3, g3 = rows_view(dy.to(x.scalar_type()));
  const at::Tensor w = weight.defined() ? weight.to(at::kFloat).contiguous() : weight;
  const auto contiguous = x.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor dx = at::empty(x.sizes(), contiguous), dz = GATED ? at::empty(x.sizes(), contiguous) : at::Tensor();
  const RowViews rv = row_views(x3, z3, g3);
  const int64_t V = x.size(-1);
  if (rv.rows == 0) return {dx, dz, weight.defined() ? at::zeros_like(weight) : at::Tensor()};
  const unsigned blocks = row_blocks(rv.rows);
  at::Tensor dw_part = weight.defined() ? at::empty({blocks, V}, x.options().dtype(at::kFloat)) : at::Tensor();
  auto stream = at::cuda::getCurrentCUDAStream();
  with_cpl(V, [&](auto cpl) {
    constexpr int CPL = decltype(cpl)::value;
    auto go = [&](auto tag) {
      using T = decltype(tag);
      auto P = [](const at::Tensor& t) { return reinterpret_cast<const T*>(t.data_ptr()); };
      rms_norm_bwd_kernel<T, CPL, GATED><<<blocks, kThreads, 0, stream>>>(
          P(g3), P(x3), GATED ? P(z3) : nullptr, w.defined() ? w.data_ptr<float>() : nullptr,
          reinterpret_cast<T*>(dx.data_ptr()), GATED ? reinterpret_cast<T*>(dz.data_ptr()) : nullptr,
          dw_part.defined() ? dw_part.data_ptr<float>() : nullptr, rv, static_cast<int>(V), static_cast<float>(eps));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (x.scalar_type() == at::kBFloat16) go(__nv_bfloat16{}); else go(float{});
  });
  return {dx, dz, dw_part.defined() ? dw_part.sum(0).to(weight.scalar_type()) : at::Tensor()};
}

}  // namespace

std::vector<at::Tensor> gated_rms_norm_backward_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& gate,
                                                     const at::Tensor& weight, double eps) {
  check_gated(x, gate, weight, "gated_rms_norm_backward_cuda");
  JET_CHECK(dy.sizes() == x.sizes() && dy.is_cuda(), "gated_rms_norm_backward_cuda: dy {} must match x {}",
            shape_str(dy.sizes()), shape_str(x.sizes()));
  return norm_backward<true>(dy, x, gate, weight, eps);
}

bool rms_norm_backward_cuda_supports(const at::Tensor& x, const at::Tensor& weight) {
  const auto st = x.scalar_type();
  return x.is_cuda() && (st == at::kBFloat16 || st == at::kFloat) && x.dim() >= 1 && x.size(-1) >= 1 &&
         x.size(-1) <= kGatedRmsNormMaxWidth && x.numel() / x.size(-1) < (int64_t{1} << 31) &&
         (!weight.defined() || (weight.is_cuda() && (weight.scalar_type() == at::kFloat || weight.scalar_type() == st) &&
                                weight.dim() == 1 && weight.size(0) == x.size(-1)));
}

std::pair<at::Tensor, at::Tensor> rms_norm_backward_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& weight, double eps) {
  JET_CHECK(rms_norm_backward_cuda_supports(x, weight) && dy.sizes() == x.sizes() && dy.is_cuda(),
            "rms_norm_backward_cuda: unsupported x {} {}, dy {}, weight {}", shape_str(x.sizes()),
            c10::toString(x.scalar_type()), shape_str(dy.sizes()), weight.defined() ? shape_str(weight.sizes()) : "none");
  auto g = norm_backward<false>(dy, x, at::Tensor(), weight, eps);
  return {g[0], g[2]};
}

}  // namespace jet::ops
