// Where a PostNAS distillation step spends its time: the teacher's forward (no grad), the student's
// forward with every layer on its linear path, the chunked KL + its gradient, and the backward, on the
// real teacher. Usage: bench_postnas_step TEACHER [B T device dtype steps]. Prints one row per phase.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/device.h"
#include "model/checkpoint.h"
#include "postnas/distill.h"
#include "postnas/supernet.h"
#ifdef JET_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace {
double now_s(at::Device d) {
#ifdef JET_CUDA
  if (d.is_cuda()) at::cuda::getCurrentCUDAStream().synchronize();
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TEACHER [B T device dtype steps]\n", argv[0]);
    return 2;
  }
  const int64_t B = argc > 2 ? std::stoll(argv[2]) : 2, T = argc > 3 ? std::stoll(argv[3]) : 128;
  const at::Device dev = jet::parse_device(argc > 4 ? argv[4] : "cpu");
  const at::ScalarType dt = jet::parse_dtype(argc > 5 ? argv[5] : "fp32");
  const int steps = argc > 6 ? std::stoi(argv[6]) : 3;
  auto ck = jet::model::load_checkpoint(argv[1]);
  jet::postnas::Supernet net(ck.config, std::move(ck.tensors), {}, dt, dev);
  const at::Tensor ids = at::randint(0, ck.config.vocab_size, {B, T}, at::kLong);
  double t_teacher = 0, t_fwd = 0, t_kl = 0, t_bwd = 0;
  for (int s = 0; s <= steps; ++s) {  // step 0 warms up
    double t0 = now_s(dev);
    at::Tensor ht;
    {
      c10::NoGradGuard g;
      net.set_teacher();
      ht = net.lm().hidden(ids);
    }
    double t1 = now_s(dev);
    net.set_placement({});
    at::Tensor hs = net.lm().hidden(ids);
    double t2 = now_s(dev);
    at::Tensor grad;
    jet::postnas::chunked_kl(hs.reshape({B * T, -1}), ht.reshape({B * T, -1}), net.lm().lm_head_weight(), 512, &grad);
    double t3 = now_s(dev);
    hs.backward(grad.view(hs.sizes()));
    double t4 = now_s(dev);
    for (const auto& p : net.linear_params()) p.slot->mutable_grad() = at::Tensor();
    if (s == 0) continue;
    t_teacher += t1 - t0, t_fwd += t2 - t1, t_kl += t3 - t2, t_bwd += t4 - t3;
  }
  const double tot = t_teacher + t_fwd + t_kl + t_bwd;
  printf("postnas step B=%lld T=%lld %s %s, %d threads: %.3f s/step, %.0f tok/s\n", (long long)B, (long long)T,
         dev.str().c_str(), jet::dtype_str(dt).c_str(), at::get_num_threads(), tot / steps, B * T * steps / tot);
  for (auto [name, t] : {std::pair<const char*, double>{"teacher forward", t_teacher}, {"student forward (all linear)", t_fwd},
                         {"chunked KL + grad", t_kl}, {"student backward", t_bwd}})
    printf("  %-30s %8.3f s/step  %5.1f%%\n", name, t / steps, 100 * t / tot);
}
