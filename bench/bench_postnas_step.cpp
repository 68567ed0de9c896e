// The PostNAS distillation step on the real teacher: where a step's time goes and the tokens/s of the loop.
// Usage: bench_postnas_step TEACHER [B T device dtype steps micro_batch kl_chunk]
// 1. Per-phase split (the device synchronised between phases, so the phases add up to more than a step):
//    teacher forward (no grad), student forward with every layer on its linear path, chunked KL + its gradient,
//    student backward, AdamW.
// 2. The step as `jet postnas supernet` runs it (distill_loss_backward + AdamW, a sub-network sampled per step,
//    losses read back every 10 steps; no checkpoint): tokens/s over `steps` steps after 3 warm-up steps.
// JET_DISTILL_REFERENCE=1 takes the old path (per-tensor AdamW, fp32 KL GEMMs), kl or adam one part of it, as
// `jet postnas` reads it (postnas::reference_from_env);
// JET_SYNC_DEBUG=1 (CUDA) warns at every host sync inside the loop of part 2.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/device.h"
#include "model/checkpoint.h"
#include "postnas/distill.h"
#include "postnas/optim.h"
#include "postnas/supernet.h"
#ifdef JET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace {

void sync(at::Device d) {
#ifdef JET_CUDA
  if (d.is_cuda()) at::cuda::getCurrentCUDAStream().synchronize();
#endif
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool env_is(const char* name) {
  const char* v = std::getenv(name);
  return v && std::string(v) == "1";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TEACHER [B T device dtype steps micro_batch kl_chunk]\n", argv[0]);
    return 2;
  }
  const int64_t B = argc > 2 ? std::stoll(argv[2]) : 2, T = argc > 3 ? std::stoll(argv[3]) : 128;
  const at::Device dev = jet::parse_device(argc > 4 ? argv[4] : "cpu");
  const at::ScalarType dt = jet::parse_dtype(argc > 5 ? argv[5] : "fp32");
  const int steps = argc > 6 ? std::stoi(argv[6]) : 3;
  jet::postnas::DistillOptions o;
  o.micro_batch = argc > 7 ? std::stoll(argv[7]) : 0;
  o.kl_chunk = argc > 8 ? std::stoll(argv[8]) : 2048;
  jet::postnas::reference_from_env(o);
  o.adam.lr = 1e-4;  // small: the weights barely move, so every step costs the same
  o.adam.fused = !o.reference_adam;
  const int64_t mb = jet::postnas::micro_batch_of(o, B);
  auto ck = jet::model::load_checkpoint(argv[1]);
  const int64_t vocab = ck.config.vocab_size;
  jet::postnas::Supernet net(ck.config, std::move(ck.tensors), {}, dt, dev);
  jet::postnas::AdamW adam(net.linear_params(), o.adam);
  auto ids_of = [&](int64_t step) {
    return at::randint(0, vocab, {B, T}, at::make_generator<at::CPUGeneratorImpl>(1000 + step), at::kLong);
  };
  const int64_t L = net.num_layers();
  printf("postnas step B=%lld T=%lld (micro-batch %lld) %s %s, %lld layers, %zu trainable tensors, %s path, kl_chunk %lld\n",
         (long long)B, (long long)T, (long long)mb, dev.str().c_str(), jet::dtype_str(dt).c_str(), (long long)L,
         net.linear_params().size(), o.reference_kl || o.reference_adam ? "reference" : "fast", (long long)o.kl_chunk);

  // 1. Phases, synchronised.
  double t[5] = {0, 0, 0, 0, 0};
  const char* names[5] = {"teacher forward", "student forward (all linear)", "chunked KL + grad", "student backward",
                          "AdamW"};
  for (int s = 0; s <= steps; ++s) {  // step 0 warms up
    const at::Tensor ids = ids_of(s);
    double mark[6];
    mark[0] = now_s();
    at::Tensor ht;
    {
      c10::NoGradGuard g;
      net.set_teacher();
      ht = net.lm().hidden(ids);
    }
    sync(dev);
    mark[1] = now_s();
    net.set_placement({});
    at::Tensor hs = net.lm().hidden(ids);
    sync(dev);
    mark[2] = now_s();
    at::Tensor grad;
    jet::postnas::chunked_kl(hs.reshape({B * T, -1}), ht.reshape({B * T, -1}), net.lm().lm_head_weight(), o.kl_chunk,
                             &grad, 1.0, o.reference_kl);
    sync(dev);
    mark[3] = now_s();
    hs.backward(grad.view(hs.sizes()));
    sync(dev);
    mark[4] = now_s();
    adam.step(s);
    sync(dev);
    mark[5] = now_s();
    if (s > 0)
      for (int i = 0; i < 5; ++i) t[i] += mark[i + 1] - mark[i];
  }
  double tot = 0;
  for (double x : t) tot += x;
  printf("phases (synchronised), %.1f ms/step:\n", 1e3 * tot / steps);
  for (int i = 0; i < 5; ++i) printf("  %-30s %9.2f ms  %5.1f%%\n", names[i], 1e3 * t[i] / steps, 100 * t[i] / tot);

  // 2. The loop as the supernet step runs it.
  jet::postnas::DistillHooks hooks;  // as the supernet step: the teacher, then a sampled sub-network
  hooks.teacher_hidden = [&](const at::Tensor& ids, std::vector<at::Tensor>* layers) {
    net.set_teacher();
    return net.lm().hidden(ids, 0, nullptr, layers);
  };
  hooks.prepare = [&](int64_t step) {
    jet::postnas::Placement p;  // a few attention layers
    p.full = {step % L, (step * 7 + 3) % L};
    if (p.full[0] == p.full[1]) p.full.pop_back();
    net.set_placement(p);
  };
  std::vector<at::Tensor> pending;
  auto run = [&](int64_t step) {
    pending.push_back(jet::postnas::distill_step(net.lm(), {ids_of(step), {}}, step, o, hooks));
    adam.step(step);
    if (pending.size() >= 10) {
      at::stack(pending).cpu();
      pending.clear();
    }
  };
  for (int s = 0; s < 3; ++s) run(s);
  sync(dev);
#ifdef JET_CUDA
  if (env_is("JET_SYNC_DEBUG")) c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
#endif
  const double t0 = now_s();
  for (int s = 0; s < steps; ++s) run(3 + s);
  if (!pending.empty()) at::stack(pending).cpu();
  sync(dev);
  const double secs = now_s() - t0;
  printf("loop: %d steps, %.1f ms/step, %.0f tok/s\n", steps, 1e3 * secs / steps, B * T * steps / secs);
}
