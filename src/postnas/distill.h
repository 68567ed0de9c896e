// Distillation, the training loop of PostNAS (supernet and finetune): the student's final hidden
// states against the teacher's through the shared, frozen LM head, loss = KL(teacher ‖ student) of the
// next-token distributions averaged over tokens, plus optionally hidden_mse × the per-layer hidden-state
// loss (layer_mse) and answer_ce × the cross-entropy of the synthetic retrieval answers' tokens (answer_ce_loss).
// Logits exist only for a chunk of rows at a time:
// the loss and its gradient with respect to the student's hidden states are computed chunk by chunk
// (no autograd through the [N, V] logits), and that gradient is fed to the student's backward.
// Checkpoints are atomic and resume bit-exactly (same device, same thread count): every random
// choice of a step (its batch, its sampled sub-network) depends only on (seed, step).
// Data parallel (postnas/dist.h; a current dist::Group): every rank runs this loop on its slice of each step's
// batch, the gradients are averaged over the ranks before clipping, the logged loss is the ranks' mean (in the
// read-back's one collective), and rank 0 alone reads and writes the checkpoints (it sends their state to the others).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/causal_lm.h"
#include "postnas/optim.h"

namespace jet::postnas {

// Mean over rows of KL(softmax(h_t Wᵀ / τ) ‖ softmax(h_s Wᵀ / τ)); h_* [N, D], W [V, D]; `chunk_rows` rows of
// logits at a time, fp32 logits and softmax (ops/kl). With grad: *grad = ∂loss/∂h_s [N, D] in h_s's dtype.
// Returns a 0-dim float64 tensor on h's device: nothing waits for the device. bf16 on CUDA: the logit and
// gradient GEMMs take bf16 operands on tensor cores (fp32 accumulation and fp32 logits; the products of bf16
// values are exact in fp32, so only the summation order differs from upcasting first); reference = true keeps
// the fp32 GEMMs of upcast operands.
at::Tensor chunked_kl(const at::Tensor& h_student, const at::Tensor& h_teacher, const at::Tensor& W, int64_t chunk_rows,
                      at::Tensor* grad = nullptr, double temperature = 1.0, bool reference = false);

// Mean over layers l of ‖s_l − t_l‖² / ‖t_l‖² (each decoder layer's output, the residual stream; relative,
// so layers whose activations are large do not dominate), in fp32, differentiable in s.
at::Tensor layer_mse(const std::vector<at::Tensor>& student, const std::vector<at::Tensor>& teacher);

// Mean over the positions with answers ≥ 0 of −log softmax(h_s Wᵀ)[answers]: the student's cross-entropy on the
// answer tokens of synthetic retrieval rows (data::answer_targets), whose numbers are known, so the loss needs no
// teacher (at 8K tokens the teacher itself misses many). h_s [B, T, D], answers [B, T] int64 on the CPU (−1: not
// an answer), W [V, D]; fp32 logits of those rows only, differentiable in h_s. An undefined tensor when no
// position is an answer.
at::Tensor answer_ce_loss(const at::Tensor& h_s, const at::Tensor& answers, const at::Tensor& W);

struct DistillOptions {
  int64_t steps = 100;
  AdamWOptions adam;
  int64_t checkpoint_every = 50;  // steps; 0 = only at the end
  int64_t kl_chunk = 512;         // logit rows at a time
  int64_t micro_batch = 0;        // sequences per forward/backward (gradient accumulation); 0 = the whole batch
  int64_t log_every = 10;         // steps between reading the loss back from the device (and the finiteness check)
  // The old path, for loss-curve comparisons and bisects: fp32 KL GEMMs (reference_kl), the per-tensor AdamW
  // (reference_adam, which reads the gradient norm back every step), a device sync after every step (sync_steps).
  bool reference_kl = false, reference_adam = false, sync_steps = false;
  double hidden_mse = 0;          // weight of layer_mse in the loss (0: KL only)
  // Weight of answer_ce_loss in the loss (0: off). One answer token of a retrieval row is ~1/10⁴ of an 8K batch's
  // KL average; this is how the retrieval rows get a say.
  double answer_ce = 0;
  uint64_t seed = 0;
  std::string dir;                // checkpoint.json + checkpoint-<step>.safetensors
  bool resume = false;            // continue from dir's checkpoint (else one there is an error)
  int64_t stop_after = -1;        // end this run after this many steps (tests: an interrupted run)
  std::string label = "distill";  // progress bar
  nlohmann::json fingerprint;     // options a resumed run must share (checked against the checkpoint)
};


// Sets opts' reference_kl, reference_adam and sync_steps from $JET_DISTILL_REFERENCE: 1 the whole old path, for
// benchmarks and loss-curve comparisons; any of kl, adam, sync (comma-separated) that part of it alone; unset or empty
// none. Any other value is a one-line error.
void reference_from_env(DistillOptions& opts);

// Called with the root of a step's last backward just before it runs (data parallel: dist::GradSync::arm).
using BeforeBackward = std::function<void(const at::Tensor& root)>;

// A step's rows: ids [B, T] int64 (CPU); answers, when defined, their answer targets (data::answer_targets).
struct Batch {
  at::Tensor ids, answers;
};

struct DistillHooks {
  std::function<Batch(int64_t step)> batch;  // a step's rows, deterministic in step
  // The teacher's final hidden states [B, T, D] for ids (no grad), and into *layers (when not null) its
  // decoder layers' outputs (CausalLM::hidden's layer_outputs). Called before `prepare`.
  std::function<at::Tensor(const at::Tensor& ids, std::vector<at::Tensor>* layers)> teacher_hidden;
  // Sets up the student for a step (the supernet samples its sub-network here); may be empty.
  std::function<void(int64_t step)> prepare;
  // When set, a step's whole forward and backward instead of distill_step (teacher_hidden and prepare
  // unused): another loss on the same loop, optimizer and checkpoints (the supernet's attention transfer).
  // It calls before_backward (when set) just before its last backward.
  std::function<at::Tensor(const at::Tensor& ids, int64_t step, const BeforeBackward& before_backward)> step;
  // Data parallel: a value (an integer below 2^24) that must be the same on every rank for a step, e.g. a hash of
  // the supernet's sampled sub-network; summed over the steps between read-backs and checked there. May be empty.
  std::function<double(int64_t step)> agree;
};

// Sequences per micro-batch of a step of `batch` sequences: opts.micro_batch (0 = all), checked to divide it.
int64_t micro_batch_of(const DistillOptions& opts, int64_t batch);

// Runs fn(part, share, last) on each micro-batch of ids [B, T] (CPU) of `micro_batch` sequences (0 = all; it must
// divide B; `label` names the step in that error): part is contiguous, pinned when `pin` (a CUDA model's copy to the
// device then does not wait for the queued work), share = its fraction of B, last = whether it is the step's last.
void for_micro_batches(const at::Tensor& ids, int64_t micro_batch, bool pin, const std::string& label,
                       const std::function<void(const at::Tensor& part, double share, bool last)>& fn);

struct DistillResult {
  std::vector<double> losses;  // per step, from step 0 (restored from the checkpoint when resuming)
  int64_t steps_done = 0;
  bool finished = false;       // all `steps` done (not stopped by stop_after)
  double seconds = 0, tokens_per_s = 0;  // this run
};

// One step's loss (KL, + hidden_mse · layer_mse when hidden_mse > 0, + answer_ce · answer_ce_loss when answer_ce > 0
// and answers has some) of the student on ids against the teacher's h_teacher (and teacher_layers), with its
// backward: gradients accumulate in the student's parameters, scaled by `weight` (a micro-batch's share of the
// step); before_backward (when set) sees the backward's root first. Returns the (unweighted) loss as a 0-dim
// float64 tensor on the device. answers: ids' answer targets, or undefined.
at::Tensor distill_loss_backward(const model::CausalLM& student, const at::Tensor& ids, const at::Tensor& answers,
                                 const at::Tensor& h_teacher, const std::vector<at::Tensor>& teacher_layers,
                                 const DistillOptions& opts, double weight = 1.0,
                                 const BeforeBackward& before_backward = {});

// One step's forward and backward over batch.ids [B, T] (CPU) in micro-batches of micro_batch_of(opts, B) sequences:
// the teacher's hidden states, hooks.prepare(step), distill_loss_backward weighted by each micro-batch's share.
// Gradients accumulate in the student's parameters; returns the step's loss as a 0-dim float64 device tensor.
// before_backward goes to the last micro-batch's backward.
at::Tensor distill_step(const model::CausalLM& student, const Batch& batch, int64_t step, const DistillOptions& opts,
                        const DistillHooks& hooks, const BeforeBackward& before_backward = {});

// Trains `trainable` (parameters of `student`) by distillation for opts.steps steps.
DistillResult distill(model::CausalLM& student, const model::ParamList& trainable, const DistillOptions& opts,
                      const DistillHooks& hooks);

}  // namespace jet::postnas
