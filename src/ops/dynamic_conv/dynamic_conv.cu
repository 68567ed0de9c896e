// CUDA forward of the dynamic causal convolution (see dynamic_conv_cuda.h). Memory-bound: the per-token
// taps [B, T, C, W] are the big read (one contiguous W-vector per thread, consecutive threads consecutive
// channels); each input value is read by W neighbouring tokens' threads, mostly from L2.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include "core/check.h"
#include "core/shape.h"
#include "ops/dynamic_conv/dynamic_conv_cuda.h"

namespace jet::ops {
namespace {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

template <typename T>
__global__ void __launch_bounds__(256)
dynamic_conv_kernel(const T* __restrict__ x, const T* __restrict__ kern, const T* __restrict__ tail,
                    T* __restrict__ y, int64_t n, int T_, int C, int W, bool silu) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int c = static_cast<int>(i % C);
  const int64_t bt = i / C;
  const int t = static_cast<int>(bt % T_);
  const int64_t b = bt / T_;
  const T* kp = kern + i * W;
  float acc = 0.f;
  for (int j = 0; j < W; ++j) {
    const int s = t - W + 1 + j;  // source token; negative indexes the tail
    float src = 0.f;
    if (s >= 0)
      src = to_f(x[(b * T_ + s) * C + c]);
    else if (tail)
      src = to_f(tail[(b * C + c) * (W - 1) + (W - 1 + s)]);
    acc += to_f(kp[j]) * src;
  }
  if (silu) acc = acc / (1.f + __expf(-acc));
  y[i] = from_f<T>(acc);
}

}  // namespace

at::Tensor dynamic_conv_cuda(const at::Tensor& x, const at::Tensor& kernels, const at::Tensor& tail, bool silu) {
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
  const at::Tensor xc = x.contiguous(), kc = kernels.contiguous();
  at::Tensor y = at::empty({B, T, C}, x.options());
  const int64_t n = B * T * C;
  if (n == 0) return y;
  const int64_t blocks = (n + 255) / 256;
  auto stream = at::cuda::getCurrentCUDAStream();
  auto run = [&](auto tag) {
    using E = decltype(tag);
    dynamic_conv_kernel<E><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
        reinterpret_cast<const E*>(xc.data_ptr()), reinterpret_cast<const E*>(kc.data_ptr()),
        tl.defined() ? reinterpret_cast<const E*>(tl.data_ptr()) : nullptr, reinterpret_cast<E*>(y.data_ptr()), n,
        static_cast<int>(T), static_cast<int>(C), static_cast<int>(W), silu);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (x.scalar_type() == at::kFloat)
    run(float{});
  else
    run(__nv_bfloat16{});
  return y;
}

}  // namespace jet::ops
