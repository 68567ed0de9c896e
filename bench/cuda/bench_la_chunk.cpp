// The CUDA chunked forward of the gated delta rule alone (linear_attention_chunk_cuda) at JetBlock-2B head
// shapes (H 12, d_k 96, d_v 256, bf16, fp32 state, h0 in, final state out, q/k L2 norm inside):
// B=8×T=4096 and B=1×T=65536. Median of 20 timed runs after warm-up (CUDA events), then the per-kernel
// split (JET_LA_CHUNK_PROFILE: prep / state / output, printed by the op to stderr) for a few runs.
// Arguments: values of JET_LA_STATE_NW to time as well (state kernel warps per block), e.g. `2 4 8`.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_util.h"
#include "ops/linear_attention/linear_attention_chunk_cuda.h"

int main(int argc, char** argv) {
  const int64_t H = 12, K = 96, V = 256;
  at::manual_seed(0);
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  printf("device: %s\n", at::cuda::getCurrentDeviceProperties()->name);
  at::InferenceMode guard;
  for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{8, 4096}, {1, 65536}}) {
    auto q = at::randn({B, T, H, K}, bf), k = at::randn({B, T, H, K}, bf), v = at::randn({B, T, H, V}, bf);
    auto g = -at::softplus(at::randn({B, T, H}, f32) - 2.5), beta = at::sigmoid(at::randn({B, T, H}, f32));
    auto s0 = at::randn({B, H, K, V}, f32);
    auto op = [&] { jet::ops::linear_attention_chunk_cuda(q, k, v, g, false, beta, s0, {}, 1.0 / std::sqrt(96.0), true); };
    unsetenv("JET_LA_STATE_NW");
    printf("GDN op B=%ld T=%ld: %.4f ms (default config)\n", B, T, jet::bench::median_ms(op, 20, 3));
    for (int a = 1; a < argc; ++a) {
      setenv("JET_LA_STATE_NW", argv[a], 1);
      printf("GDN op B=%ld T=%ld: %.4f ms (JET_LA_STATE_NW=%s)\n", B, T, jet::bench::median_ms(op, 20, 3), argv[a]);
    }
    unsetenv("JET_LA_STATE_NW");
    fflush(stdout);
    setenv("JET_LA_CHUNK_PROFILE", "1", 1);
    for (int i = 0; i < 4; ++i) op();
    unsetenv("JET_LA_CHUNK_PROFILE");
    cudaDeviceSynchronize();
    fflush(stderr);
  }
  return 0;
}
