// The gated delta rule op forward + backward (linear_attention_chunked with gradients of q, k, v, g, β and
// h0; q/k L2 norm inside) at JetBlock-2B head shapes (H 12, d_k 96, d_v 256, bf16): B=8×T=4096 and
// B=1×T=65536. Each backward path (JET_LA_BWD: scan = ATen batched matmuls + the chunk-scan kernel, cuda =
// the gradient kernels of linear_attention_chunk_grad.h, cuda_aten = those kernels with the per-chunk
// algebra in ATen ops) timed as the median of CUDA-event runs, then its per-phase split
// (JET_LA_BWD_PROFILE, printed to stderr) for two runs. Arguments: the paths to time (default: all three).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "ops/linear_attention/linear_attention.h"

int main(int argc, char** argv) {
  const int64_t H = 12, K = 96, V = 256;
  std::vector<std::string> paths;
  for (int a = 1; a < argc; ++a) paths.push_back(argv[a]);
  if (paths.empty()) paths = {"scan", "cuda_aten", "cuda"};
  printf("device: %s\n", at::cuda::getCurrentDeviceProperties()->name);
  at::manual_seed(0);
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{8, 4096}, {1, 65536}}) {
    jet::ops::LinearAttentionInput in;
    in.q = at::randn({B, T, H, K}, bf).requires_grad_();
    in.k = at::randn({B, T, H, K}, bf).requires_grad_();
    in.v = at::randn({B, T, H, V}, bf).requires_grad_();
    in.g = (-at::softplus(at::randn({B, T, H}, f32) - 2.5)).requires_grad_();
    in.beta = at::sigmoid(at::randn({B, T, H}, f32)).requires_grad_();
    in.initial_state = at::randn({B, H, K, V}, f32).requires_grad_();
    const at::Tensor dO = at::randn({B, T, H, V}, bf), dS = at::randn({B, H, K, V}, f32);
    jet::ops::LinearAttentionOptions opt;
    opt.decay = jet::ops::Decay::scalar;
    opt.delta = true;
    opt.qk_l2norm = true;
    auto step = [&] {
      const jet::ops::LinearAttentionOutput out = jet::ops::linear_attention_chunked(in, opt);
      torch::autograd::backward({out.o, out.final_state}, {dO, dS});
      for (at::Tensor* t : {&in.q, &in.k, &in.v, &in.g, &in.beta, &in.initial_state}) t->mutable_grad().reset();
    };
    for (const std::string& pth : paths) {
      setenv("JET_LA_BWD", pth.c_str(), 1);
      printf("GDN op fwd+bwd B=%ld T=%ld JET_LA_BWD=%s: %.3f ms\n", B, T, pth.c_str(), jet::bench::median_ms(step, 10, 2));
      fflush(stdout);
      setenv("JET_LA_BWD_PROFILE", "1", 1);
      for (int i = 0; i < 2; ++i) step();
      unsetenv("JET_LA_BWD_PROFILE");
      cudaDeviceSynchronize();
      fflush(stderr);
    }
    unsetenv("JET_LA_BWD");
  }
  return 0;
}
