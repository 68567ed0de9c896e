// AdamW for distillation: fp32 master weights (the parameters themselves may be bf16), decoupled weight
// decay on matrices only, global-norm gradient clipping, and linear warmup then cosine decay of the
// learning rate. Its whole state is a TensorMap, so checkpoints resume bit-exactly.
// The update is LibTorch's fused multi-tensor AdamW (`_fused_adamw_`, CUDA and CPU kernels) on the fp32
// masters; the clip factor reaches it as its gradient scale (a device tensor), so a step never waits for the
// device. `fused = false` keeps the per-tensor reference loop (loss-curve comparisons).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/tensors.h"
#include "model/params.h"

namespace jet::postnas {

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double grad_clip = 1.0;    // global L2 norm; 0 = off
  int64_t warmup = 0;        // steps of linear warmup from 0
  int64_t total = 0;         // steps of the schedule (cosine to min_lr_ratio · lr at `total`)
  double min_lr_ratio = 0.1;
  bool fused = true;
};

class AdamW {
 public:
  // params: the trainable parameters (their slots must stay valid); the masters start as fp32 copies.
  AdamW(const model::ParamList& params, const AdamWOptions& opts);
  double lr_at(int64_t step) const;  // step counts from 0
  // One update from the parameters' gradients (then cleared); returns the global gradient norm before
  // clipping as a 0-dim fp32 tensor on the parameters' device.
  at::Tensor step(int64_t step);
  // "<name>.master", "<name>.exp_avg", "<name>.exp_avg_sq" (CPU fp32).
  io::TensorMap state() const;
  void load_state(const io::TensorMap& s, const std::string& where);  // also rewrites the parameters

 private:
  struct Slot {
    const model::Param* param;
    at::Tensor master, m, v;
    bool decay;
  };
  // The fp32 gradients of every slot (zeros where a parameter got none) and their global norm.
  std::vector<at::Tensor> fp32_grads(at::Tensor* norm) const;
  void step_reference(int64_t step, std::vector<at::Tensor>& grads, const at::Tensor& norm);
  void step_fused(int64_t step, std::vector<at::Tensor>& grads, const at::Tensor& norm);

  AdamWOptions opts_;
  std::vector<Slot> slots_;
  at::Tensor step_count_;  // the fused kernel's step (bias correction), one fp32 scalar on the device
};

}  // namespace jet::postnas
