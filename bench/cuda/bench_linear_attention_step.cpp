// Decode-step microbenchmark of the fused CUDA linear-attention kernels at JetBlock-2B shapes
// (H=12, K=96, V=256, W=4): ms per step (median of 50 after warm-up, CUDA events) and achieved
// bandwidth (state read + write, counted) against a device-to-device copy measured in the same run.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <cstdio>
#include <vector>

#include "bench_util.h"
#include "ops/linear_attention/linear_attention_step_cuda.h"

using jet::bench::median_ms;

int main() {
  const int64_t H = 12, K = 96, V = 256, W = 4;
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  // Copy bandwidth: 1 GiB buffer, bytes read + written.
  auto src = at::empty({256 << 20}, f32), dst = at::empty_like(src);
  double copy_ms = median_ms([&] { dst.copy_(src); }, 20);
  double copy_gbs = 2.0 * src.numel() * 4 / (copy_ms * 1e6);
  printf("device: %s | copy bandwidth %.0f GB/s\n", at::cuda::getCurrentDeviceProperties()->name, copy_gbs);
  printf("%-28s %6s %10s %10s %8s\n", "kernel", "B", "ms/step", "GB/s", "of copy");
  for (int64_t B : {1, 8, 64, 256}) {
    auto q = at::randn({B, H, K}, bf), k = at::randn({B, H, K}, bf), v = at::randn({B, H * V}, bf);
    auto kern = at::randn({B, H * V, W}, bf), tail = at::zeros({B, H * V, W - 1}, bf);
    auto a = at::randn({B, H}, bf), b = at::randn({B, H}, bf);
    auto A_log = at::zeros({H}, f32), dt_bias = at::zeros({H}, f32);
    auto state = at::zeros({B, H, K, V}, f32);
    auto g = -at::rand({B, H}, f32), beta = at::rand({B, H}, f32);
    const double state_bytes = 2.0 * B * H * K * V * 4;
    double ms = median_ms([&] {
      jet::ops::linear_attention_step_cuda(q, k, v.view({B, H, V}), g, beta, state, jet::ops::StepDecay::scalar,
                                           0.1, true);
    });
    printf("%-28s %6ld %10.4f %10.0f %7.0f%%\n", "gdn step (delta, scalar)", B, ms, state_bytes / (ms * 1e6),
           100 * state_bytes / (ms * 1e6) / copy_gbs);
    ms = median_ms([&] { jet::ops::jet_block_step_cuda(q, k, v, kern, tail, a, b, A_log, dt_bias, state, 0.1); });
    printf("%-28s %6ld %10.4f %10.0f %7.0f%%\n", "jet step (conv+gates+gdn)", B, ms, state_bytes / (ms * 1e6),
           100 * state_bytes / (ms * 1e6) / copy_gbs);
  }
  return 0;
}
