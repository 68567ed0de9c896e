// CUDA forward and backward of the delta-rule gates (delta_gates.h). Tiny and memory-light ([tokens, H]): the point
// is one launch instead of ATen's chain of casts, exp, softplus, mul, sigmoid (and twice as many in the backward,
// with two reductions). One thread per element; the backward sums dA_log and ddt_bias per head in shared memory,
// one partial row per block, summed by the host.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "core/check.h"
#include "core/shape.h"
#include "ops/bf16.cuh"
#include "ops/gates/delta_gates.h"
#include "ops/row_view.h"

namespace jet::ops {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxHeads = 1024;  // the backward's per-head sums live in shared memory

// Element i = row·H + h of a [rows, H] view whose rows start every `ld` elements (unit head stride).
struct Rows {
  int64_t n;  // rows · H
  int H;
  int64_t lda, ldb;
};

__device__ __forceinline__ float softplus(float u) { return u > 20.f ? u : log1pf(__expf(u)); }
__device__ __forceinline__ float sigmoid(float u) { return 1.f / (1.f + __expf(-u)); }

template <typename T>
__global__ void __launch_bounds__(kThreads)
delta_gates_fwd_kernel(const T* __restrict__ a, const T* __restrict__ b, const float* __restrict__ A_log,
                       const float* __restrict__ dt_bias, float* __restrict__ g, float* __restrict__ beta, Rows r) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < r.n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t row = i / r.H;
    const int h = static_cast<int>(i - row * r.H);
    g[i] = -__expf(A_log[h]) * softplus(to_f(a[row * r.lda + h]) + dt_bias[h]);
    beta[i] = sigmoid(to_f(b[row * r.ldb + h]));
  }
}

// da = dg · (−exp(A_log)) · σ(a + dt_bias), db = dβ · β(1 − β); dA_log[h] = Σ dg · g, ddt_bias[h] = Σ da, per
// block into part[block, 2, H].
template <typename T>
__global__ void __launch_bounds__(kThreads)
delta_gates_bwd_kernel(const float* __restrict__ dg, const float* __restrict__ dbeta, const T* __restrict__ a,
                       const T* __restrict__ b, const float* __restrict__ A_log, const float* __restrict__ dt_bias,
                       T* __restrict__ da, T* __restrict__ db, float* __restrict__ part, Rows r) {
  extern __shared__ float sums[];  // [2, H]: dA_log, ddt_bias
  for (int h = threadIdx.x; h < 2 * r.H; h += kThreads) sums[h] = 0.f;
  __syncthreads();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < r.n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t row = i / r.H;
    const int h = static_cast<int>(i - row * r.H);
    float dai = 0.f, dbi = 0.f;
    if (dg) {
      const float u = to_f(a[row * r.lda + h]) + dt_bias[h], A = -__expf(A_log[h]), d = dg[i];
      dai = d * A * sigmoid(u);
      atomicAdd(&sums[h], d * A * softplus(u));
      atomicAdd(&sums[r.H + h], dai);
    }
    if (dbeta) {
      const float s = sigmoid(to_f(b[row * r.ldb + h]));
      dbi = dbeta[i] * s * (1.f - s);
    }
    da[i] = from_f<T>(dai);
    db[i] = from_f<T>(dbi);
  }
  __syncthreads();
  for (int h = threadIdx.x; h < 2 * r.H; h += kThreads) part[static_cast<int64_t>(blockIdx.x) * 2 * r.H + h] = sums[h];
}

// t [..., H] as rows of H at one stride (a column slice of a wider GEMM output is read in place), else a copy.
at::Tensor gate_rows(const at::Tensor& t) { return uniform_row_stride(t) >= 0 ? t : t.contiguous(); }

unsigned blocks_for(int64_t n) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min((n + kThreads - 1) / kThreads, sms * 4)));
}

template <typename F>
void by_dtype(at::ScalarType st, F&& f) {
  if (st == at::kBFloat16)
    f(__nv_bfloat16{});
  else
    f(float{});
}

}  // namespace

bool delta_gates_cuda_supports(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                               const at::Tensor& dt_bias) {
  const auto st = a.scalar_type();
  return a.is_cuda() && (st == at::kBFloat16 || st == at::kFloat) && b.is_cuda() && b.scalar_type() == st &&
         a.dim() >= 1 && b.sizes() == a.sizes() && a.size(-1) >= 1 && a.size(-1) <= kMaxHeads && A_log.is_cuda() &&
         dt_bias.is_cuda() && A_log.scalar_type() == at::kFloat && dt_bias.scalar_type() == at::kFloat &&
         A_log.dim() == 1 && A_log.size(0) == a.size(-1) && dt_bias.dim() == 1 && dt_bias.size(0) == a.size(-1);
}

std::pair<at::Tensor, at::Tensor> delta_gates_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& A_log,
                                                   const at::Tensor& dt_bias) {
  JET_CHECK(delta_gates_cuda_supports(a, b, A_log, dt_bias), "delta_gates_cuda: unsupported a {} {}, b {}, A_log {}",
            shape_str(a.sizes()), c10::toString(a.scalar_type()), shape_str(b.sizes()), shape_str(A_log.sizes()));
  c10::cuda::CUDAGuard guard(a.device());
  const at::Tensor ar = gate_rows(a), br = gate_rows(b), Al = A_log.contiguous(), dtb = dt_bias.contiguous();
  const auto f32 = a.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
  at::Tensor g = at::empty(a.sizes(), f32), beta = at::empty(a.sizes(), f32);
  const Rows r{a.numel(), static_cast<int>(a.size(-1)), uniform_row_stride(ar), uniform_row_stride(br)};
  if (r.n == 0) return {g, beta};
  by_dtype(a.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    delta_gates_fwd_kernel<T><<<blocks_for(r.n), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const T*>(ar.data_ptr()), reinterpret_cast<const T*>(br.data_ptr()), Al.data_ptr<float>(),
        dtb.data_ptr<float>(), g.data_ptr<float>(), beta.data_ptr<float>(), r);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {g, beta};
}

std::vector<at::Tensor> delta_gates_backward_cuda(const at::Tensor& dg, const at::Tensor& dbeta, const at::Tensor& a,
                                                  const at::Tensor& b, const at::Tensor& A_log, const at::Tensor& dt_bias) {
  JET_CHECK(delta_gates_cuda_supports(a, b, A_log, dt_bias), "delta_gates_backward_cuda: unsupported a {} {}, b {}",
            shape_str(a.sizes()), c10::toString(a.scalar_type()), shape_str(b.sizes()));
  for (const at::Tensor* t : {&dg, &dbeta})
    JET_CHECK(!t->defined() || (t->is_cuda() && t->sizes() == a.sizes()),
              "delta_gates_backward_cuda: gradient {} must be {}", shape_str(t->sizes()), shape_str(a.sizes()));
  c10::cuda::CUDAGuard guard(a.device());
  const at::Tensor ar = gate_rows(a), br = gate_rows(b), Al = A_log.contiguous(), dtb = dt_bias.contiguous();
  auto f32 = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; };
  const at::Tensor dgc = f32(dg), dbc = f32(dbeta);
  const auto contiguous = a.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor da = at::empty(a.sizes(), contiguous), db = at::empty(a.sizes(), contiguous);
  const Rows r{a.numel(), static_cast<int>(a.size(-1)), uniform_row_stride(ar), uniform_row_stride(br)};
  const int64_t H = r.H;
  if (r.n == 0)
    return {da, db, at::zeros_like(A_log), at::zeros_like(dt_bias)};
  const unsigned blocks = blocks_for(r.n);
  at::Tensor part = at::empty({blocks, 2, H}, a.options().dtype(at::kFloat));
  by_dtype(a.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    delta_gates_bwd_kernel<T><<<blocks, kThreads, 2 * H * sizeof(float), at::cuda::getCurrentCUDAStream()>>>(
        dgc.defined() ? dgc.data_ptr<float>() : nullptr, dbc.defined() ? dbc.data_ptr<float>() : nullptr,
        reinterpret_cast<const T*>(ar.data_ptr()), reinterpret_cast<const T*>(br.data_ptr()), Al.data_ptr<float>(),
        dtb.data_ptr<float>(), reinterpret_cast<T*>(da.data_ptr()), reinterpret_cast<T*>(db.data_ptr()),
        part.data_ptr<float>(), r);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  const at::Tensor sums = part.sum(0);  // [2, H]
  return {da, db, sums[0].to(A_log.scalar_type()), sums[1].to(dt_bias.scalar_type())};
}

}  // namespace jet::ops
