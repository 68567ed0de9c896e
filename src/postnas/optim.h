// AdamW for distillation: fp32 master weights (the parameters themselves may be bf16), decoupled weight
// decay on matrices only, global-norm gradient clipping, and linear warmup then cosine decay of the
// learning rate. Its whole state is a TensorMap, so checkpoints resume bit-exactly.
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
};

class AdamW {
 public:
  // params: the trainable parameters (their slots must stay valid); the masters start as fp32 copies.
  AdamW(const model::ParamList& params, const AdamWOptions& opts);
  double lr_at(int64_t step) const;  // step counts from 0
  // One update from the parameters' gradients (then cleared); returns the gradient norm before clipping.
  double step(int64_t step);
  // "<name>.master", "<name>.exp_avg", "<name>.exp_avg_sq" (CPU fp32).
  io::TensorMap state() const;
  void load_state(const io::TensorMap& s, const std::string& where);  // also rewrites the parameters

 private:
  struct Slot {
    const model::Param* param;
    at::Tensor master, m, v;
    bool decay;
  };
  AdamWOptions opts_;
  std::vector<Slot> slots_;
};

}  // namespace jet::postnas
