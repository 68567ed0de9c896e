// CUDA forward and backward of the dynamic causal convolution (see dynamic_conv_cuda.h). Memory-bound: the
// per-token taps [B, T, C, W] are the big read (one contiguous W-vector per thread, consecutive threads
// consecutive channels). Forward: one thread per output, each input value read by W neighbouring tokens'
// threads, mostly from L2. Backward: one thread per (sequence, channel, run of tokens), walking its tokens
// backwards with the input window and the pending input gradients in registers, so the taps, inputs and
// output gradients are read once (plus a halo of W−1 tokens per run). W = 4 taps are one vector load in both.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include "core/check.h"
#include "core/shape.h"
#include "ops/bf16.cuh"
#include "ops/dynamic_conv/dynamic_conv_cuda.h"
#include "ops/row_view.h"

#include <cstdint>
#include <type_traits>
#include <vector>

namespace jet::ops {
namespace {

// One token's W taps of one channel; W = 4 as one 8-byte (bf16) or 16-byte (fp32) access (the host
// guarantees the alignment), else W scalar accesses.
template <typename T, int W>
__device__ __forceinline__ void load_taps(const T* p, float (&k)[W]) {
  if constexpr (W == 4 && std::is_same_v<T, float>) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    k[0] = v.x, k[1] = v.y, k[2] = v.z, k[3] = v.w;
  } else if constexpr (W == 4) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v.y));
    k[0] = lo.x, k[1] = lo.y, k[2] = hi.x, k[3] = hi.y;
  } else {
#pragma unroll
    for (int j = 0; j < W; ++j) k[j] = to_f(p[j]);
  }
}
template <typename T, int W>
__device__ __forceinline__ void store_taps(T* p, const float (&k)[W]) {
  if constexpr (W == 4 && std::is_same_v<T, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(k[0], k[1], k[2], k[3]);
  } else if constexpr (W == 4) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(k[0], k[1]), hi = __floats2bfloat162_rn(k[2], k[3]);
    uint2 v;
    v.x = *reinterpret_cast<const unsigned*>(&lo), v.y = *reinterpret_cast<const unsigned*>(&hi);
    *reinterpret_cast<uint2*>(p) = v;
  } else {
#pragma unroll
    for (int j = 0; j < W; ++j) p[j] = from_f<T>(k[j]);
  }
}

// Tokens per thread in the backward: enough threads at B·C ≈ 25K (B 8, C 3072) and a small halo (W−1).
constexpr int kBwdRun = 128;

// The value of x (rows of ldx) at token s (< 0: the tail, zeros without one) for channel c of sequence b.
template <typename T>
__device__ __forceinline__ float conv_input(const T* x, const T* tail, int64_t b, int s, int T_, int C, int64_t ldx,
                                            int c, int W) {
  if (s >= 0) return to_f(x[(b * T_ + s) * ldx + c]);
  return tail ? to_f(tail[(b * C + c) * (W - 1) + (W - 1 + s)]) : 0.f;
}

// One thread per (b, c, run of kBwdRun tokens [t0, t1)). It walks t from t1 + W − 2 (the halo: later tokens
// whose taps reach into this run) down to t0, recomputing z_t = Σ_j κ_t[j] x_{t−W+1+j} from the window
// xw (xw[j] = x_{t−W+1+j}) and dz_t = dy_t · act'(z_t); writes dκ_t = dz_t · xw for its own tokens; adds
// dz_t κ_t[j] into acc[j], the gradient of x_{t−W+1+j}, and writes dx_t once complete (after its own token).
// The run that starts at t = 0 finishes the tail's gradient (tokens −W+1 … −1). Next token's loads are
// issued before this token's math.
template <typename T, int W>
__global__ void __launch_bounds__(128)
dynamic_conv_bwd_kernel(const T* __restrict__ x, const T* __restrict__ kern, const T* __restrict__ tail,
                        const T* __restrict__ dy, const float* __restrict__ shared, T* __restrict__ dx,
                        T* __restrict__ dkern, T* __restrict__ dtail, float* __restrict__ dshared, int T_, int C,
                        int64_t ldx, bool silu) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t b = blockIdx.z;
  const int t0 = blockIdx.y * kBwdRun, t1 = min(t0 + kBwdRun, T_);
  const int top = min(t1 + W - 2, T_ - 1);
  float xw[W], acc[W], kt[W], kn[W], sh[W], ds[W];
#pragma unroll
  for (int j = 0; j < W; ++j) {
    xw[j] = conv_input(x, tail, b, top - W + 1 + j, T_, C, ldx, c, W), acc[j] = 0.f, ds[j] = 0.f;
    sh[j] = shared ? shared[c * W + j] : 0.f;
  }
  auto taps = [&](int t, float(&k)[W]) {
    load_taps<T, W>(kern + ((b * T_ + t) * C + c) * W, k);
#pragma unroll
    for (int j = 0; j < W; ++j) k[j] += sh[j];
  };
  taps(top, kt);
  float gy = to_f(dy[(b * T_ + top) * C + c]);
  for (int t = top; t >= t0; --t) {
    // Prefetch token t − 1: its taps, output gradient and the window's new first input.
    float gn = 0.f, xn = 0.f;
    if (t > t0) {
      taps(t - 1, kn);
      gn = to_f(dy[(b * T_ + t - 1) * C + c]);
      xn = conv_input(x, tail, b, t - W, T_, C, ldx, c, W);
    }
    float z = 0.f;
#pragma unroll
    for (int j = 0; j < W; ++j) z += kt[j] * xw[j];
    float dz = gy;
    if (silu) {
      const float sg = 1.f / (1.f + __expf(-z));
      dz *= sg * (1.f + z * (1.f - sg));
    }
    const size_t bt = static_cast<size_t>(b * T_ + t) * C + c;
    if (t < t1) {
      float d[W];
#pragma unroll
      for (int j = 0; j < W; ++j) d[j] = dz * xw[j], ds[j] += d[j];
      if (dkern) store_taps<T, W>(dkern + bt * W, d);
    }
#pragma unroll
    for (int j = 0; j < W; ++j) acc[j] += dz * kt[j];
    if (t < t1 && dx) dx[bt] = from_f<T>(acc[W - 1]);
    if (t > t0) {  // slide to token t − 1
#pragma unroll
      for (int j = W - 1; j > 0; --j) xw[j] = xw[j - 1], acc[j] = acc[j - 1];
      xw[0] = xn, acc[0] = 0.f;
#pragma unroll
      for (int j = 0; j < W; ++j) kt[j] = kn[j];
      gy = gn;
    }
  }
  // acc[j] (j < W − 1) is now the gradient of token t0 − W + 1 + j: the tail's entry j when t0 = 0.
  if (t0 == 0 && dtail) {
#pragma unroll
    for (int j = 0; j + 1 < W; ++j) dtail[(b * C + c) * (W - 1) + j] = from_f<T>(acc[j]);
  }
  if (dshared) {  // this run's share of Σ_{b,t} dκ_t[c, j]
#pragma unroll
    for (int j = 0; j < W; ++j) atomicAdd(&dshared[c * W + j], ds[j]);
  }
}
// One thread per output. WC = 4: W = 4 taps as one vector load (the host guarantees the alignment); WC = 0: W scalar
// loads.
template <typename T, int WC>
__global__ void __launch_bounds__(256)
dynamic_conv_kernel(const T* __restrict__ x, const T* __restrict__ kern, const T* __restrict__ tail,
                    const float* __restrict__ shared, T* __restrict__ y, int64_t n, int T_, int C, int64_t ldx, int W,
                    bool silu) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int c = static_cast<int>(i % C);
  const int64_t bt = i / C;
  const int t = static_cast<int>(bt % T_);
  const int64_t b = bt / T_;
  float acc = 0.f;
  if constexpr (WC > 0) {
    float k[WC];
    load_taps<T, WC>(kern + i * WC, k);
#pragma unroll
    for (int j = 0; j < WC; ++j)
      acc += (k[j] + (shared ? shared[c * WC + j] : 0.f)) * conv_input(x, tail, b, t - WC + 1 + j, T_, C, ldx, c, WC);
  } else {
    const T* kp = kern + i * W;
    for (int j = 0; j < W; ++j)
      acc += (to_f(kp[j]) + (shared ? shared[c * W + j] : 0.f)) * conv_input(x, tail, b, t - W + 1 + j, T_, C, ldx, c, W);
  }
  if (silu) acc = acc / (1.f + __expf(-acc));
  y[i] = from_f<T>(acc);
}

// x [B, T, C] as tokens of C channels at one row stride (a column slice of a wider GEMM output is read in place),
// else a contiguous copy.
at::Tensor conv_rows(const at::Tensor& x) { return uniform_row_stride(x) >= 0 ? x : x.contiguous(); }

// The shared taps [C, W] as contiguous fp32 (undefined stays undefined).
at::Tensor shared_taps(const at::Tensor& shared, int64_t C, int64_t W, const char* who) {
  if (!shared.defined()) return shared;
  JET_CHECK(shared.is_cuda() && shared.sizes() == at::IntArrayRef({C, W}), "{}: shared taps {} must be CUDA [{}, {}]",
            who, shape_str(shared.sizes()), C, W);
  return shared.to(at::kFloat).contiguous();
}

}  // namespace

at::Tensor dynamic_conv_cuda(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu,
                             const at::Tensor& shared) {
  JET_CHECK(x.is_cuda() && x.dim() == 3 && kernels.dim() == 4 && kernels.size(0) == x.size(0) &&
                kernels.size(1) == x.size(1) && kernels.size(2) == x.size(2),
            "dynamic_conv_cuda: x {} must be CUDA [B, T, C] and kernels {} [B, T, C, W]", shape_str(x.sizes()),
            shape_str(kernels.sizes()));
  JET_CHECK(x.scalar_type() == kernels.scalar_type() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16),
            "dynamic_conv_cuda: x and kernels must share dtype fp32 or bf16");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), W = kernels.size(3);
  JET_CHECK(W >= 1 && T < (int64_t{1} << 31) && C < (int64_t{1} << 31), "dynamic_conv_cuda: bad sizes");
  at::Tensor tl;
  if (tail.defined() && W > 1) {
    JET_CHECK(tail.sizes() == at::IntArrayRef({B, C, W - 1}), "dynamic_conv_cuda: tail {} must be [{}, {}, {}]",
              shape_str(tail.sizes()), B, C, W - 1);
    tl = tail.to(x.scalar_type()).contiguous();
  }
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = conv_rows(x), kc = kernels.contiguous(), sh = shared_taps(shared, C, W, "dynamic_conv_cuda");
  at::Tensor y = at::empty({B, T, C}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t n = B * T * C;
  if (n == 0) return y;
  const int64_t blocks = (n + 255) / 256;
  auto stream = at::cuda::getCurrentCUDAStream();
  // W = 4 taps in one vector load where they are aligned to it (a fresh GEMM output is), else scalar loads.
  const bool vec4 = W == 4 && reinterpret_cast<uintptr_t>(kc.data_ptr()) % (4 * kc.element_size()) == 0;
  auto run = [&](auto tag, auto wc) {
    using E = decltype(tag);
    dynamic_conv_kernel<E, decltype(wc)::value><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
        reinterpret_cast<const E*>(xc.data_ptr()), reinterpret_cast<const E*>(kc.data_ptr()),
        tl.defined() ? reinterpret_cast<const E*>(tl.data_ptr()) : nullptr, sh.defined() ? sh.data_ptr<float>() : nullptr,
        reinterpret_cast<E*>(y.data_ptr()), n, static_cast<int>(T), static_cast<int>(C), uniform_row_stride(xc),
        static_cast<int>(W), silu);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  auto by_w = [&](auto tag) {
    if (vec4)
      run(tag, std::integral_constant<int, 4>{});
    else
      run(tag, std::integral_constant<int, 0>{});
  };
  if (x.scalar_type() == at::kFloat)
    by_w(float{});
  else
    by_w(__nv_bfloat16{});
  return y;
}

}  // namespace jet::ops

namespace jet::ops {

std::vector<at::Tensor> dynamic_conv_backward_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& kernels,
                                                   const at::Tensor& tail, bool silu, bool need_dx, bool need_dkernels,
                                                   bool need_dtail, const at::Tensor& shared, bool need_dshared) {
  JET_CHECK(x.is_cuda() && x.dim() == 3 && kernels.dim() == 4 && kernels.size(0) == x.size(0) &&
                kernels.size(1) == x.size(1) && kernels.size(2) == x.size(2) && dy.sizes() == x.sizes(),
            "dynamic_conv_backward_cuda: x {} and dy {} must be CUDA [B, T, C], kernels {} [B, T, C, W]",
            shape_str(x.sizes()), shape_str(dy.sizes()), shape_str(kernels.sizes()));
  const auto dt = x.scalar_type();
  JET_CHECK(kernels.scalar_type() == dt && (dt == at::kFloat || dt == at::kBFloat16),
            "dynamic_conv_backward_cuda: x and kernels must share dtype fp32 or bf16");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), W = kernels.size(3);
  JET_CHECK(W >= 1 && W <= kDynamicConvBwdMaxW && B <= 65535 && (T + kBwdRun - 1) / kBwdRun <= 65535 &&
                C < (int64_t{1} << 31),
            "dynamic_conv_backward_cuda: W {} (1 … {}), B {} or T {} out of range", W, kDynamicConvBwdMaxW, B, T);
  at::Tensor tl;
  if (tail.defined() && W > 1) {
    JET_CHECK(tail.sizes() == at::IntArrayRef({B, C, W - 1}), "dynamic_conv_backward_cuda: tail {} must be [{}, {}, {}]",
              shape_str(tail.sizes()), B, C, W - 1);
    tl = tail.to(dt).contiguous();
  }
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = conv_rows(x), gc = dy.to(dt).contiguous();
  at::Tensor kc = kernels.contiguous();
  // W = 4 taps are read as one vector per token: a view that starts off that alignment is copied first.
  if (W == 4 && reinterpret_cast<uintptr_t>(kc.data_ptr()) % (4 * kc.element_size()) != 0) kc = kc.clone();
  at::Tensor dx = need_dx ? at::empty({B, T, C}, x.options()) : at::Tensor();
  at::Tensor dk = need_dkernels ? at::empty({B, T, C, W}, x.options()) : at::Tensor();
  at::Tensor dtl = need_dtail && tail.defined() ? at::zeros({B, C, W - 1}, x.options()) : at::Tensor();
  const at::Tensor sh = shared_taps(shared, C, W, "dynamic_conv_backward_cuda");
  at::Tensor dsh = need_dshared && sh.defined() ? at::zeros({C, W}, x.options().dtype(at::kFloat)) : at::Tensor();
  if (B * T * C > 0 && (dx.defined() || dk.defined() || (dtl.defined() && W > 1) || dsh.defined())) {
    // The run that starts at t = 0 writes the whole tail gradient, so T = 0 leaves it at zero.
    const dim3 grid(static_cast<unsigned>((C + 127) / 128), static_cast<unsigned>((T + kBwdRun - 1) / kBwdRun),
                    static_cast<unsigned>(B));
    auto stream = at::cuda::getCurrentCUDAStream();
    auto run = [&](auto tag, auto w) {
      using E = decltype(tag);
      constexpr int kW = decltype(w)::value;
      auto in = [](const at::Tensor& t) { return t.defined() ? reinterpret_cast<const E*>(t.data_ptr()) : nullptr; };
      auto out = [](at::Tensor& t) { return t.defined() ? reinterpret_cast<E*>(t.data_ptr()) : nullptr; };
      dynamic_conv_bwd_kernel<E, kW><<<grid, 128, 0, stream>>>(
          in(xc), in(kc), in(tl), in(gc), sh.defined() ? sh.data_ptr<float>() : nullptr, out(dx), out(dk),
          W > 1 ? out(dtl) : nullptr, dsh.defined() ? dsh.data_ptr<float>() : nullptr, static_cast<int>(T),
          static_cast<int>(C), uniform_row_stride(xc), silu);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    auto by_w = [&](auto tag) {
      switch (W) {
        case 1: return run(tag, std::integral_constant<int, 1>{});
        case 2: return run(tag, std::integral_constant<int, 2>{});
        case 3: return run(tag, std::integral_constant<int, 3>{});
        default: return run(tag, std::integral_constant<int, 4>{});
      }
    };
    if (dt == at::kFloat)
      by_w(float{});
    else
      by_w(__nv_bfloat16{});
  }
  if (dtl.defined()) dtl = dtl.to(tail.scalar_type());
  if (dsh.defined()) dsh = dsh.to(shared.scalar_type());
  return {dx, dk, dtl, dsh};
}

}  // namespace jet::ops
