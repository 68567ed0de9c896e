// The once-for-all supernet of PostNAS step 1: the pretrained teacher with, in every layer, a second
// token-mixer path — a new linear-attention block (JetBlock by default) — beside its frozen attention,
// which can also run with a sliding window. Which path each layer takes is switched per forward
// (set_placement), so one CausalLM serves as the teacher (every layer attention), as any sampled
// sub-network during distillation, and as any candidate hybrid during the placement search.
// Only the linear blocks are trainable; MLPs, norms, embeddings and the LM head stay the teacher's.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tensors.h"
#include "model/causal_lm.h"
#include "postnas/placement.h"

namespace jet::postnas {

enum class Path { linear, full, swa };

// One layer's mixer in the supernet: the teacher's attention, the same weights with a window, and the
// linear block; forward and the cache interface go to the current path.
class SuperMixer : public model::Mixer {
 public:
  SuperMixer(std::unique_ptr<model::Mixer> swa, std::unique_ptr<model::Mixer> linear);
  // The teacher's own attention mixer, taken out of the model this SuperMixer replaces it in.
  void set_full(std::unique_ptr<model::Mixer> full) { full_ = std::move(full); }
  Path path = Path::full;
  // Attention transfer: forward returns the teacher attention's output (the next layer's input stays the
  // teacher's) and the linear block, run on the same input, leaves its distance to it in transfer_loss.
  bool transfer = false;
  at::Tensor transfer_loss;  // ‖linear(x) − attn(x)‖² / ‖attn(x)‖² of the last transfer forward (fp32, 0-dim)
  at::Tensor forward(const at::Tensor& x, const model::ForwardContext& ctx, model::MixerState* state) override;
  std::unique_ptr<model::MixerState> new_state(int64_t batch, int64_t max_len,
                                               const at::TensorOptions& opts) const override;
  at::Tensor forward_rows(const at::Tensor& x, const model::ForwardContext& ctx, model::MixerState& state,
                          int64_t row) override;
  at::Tensor decode_rows(const at::Tensor& x, const model::ForwardContext& ctx, model::MixerState& state) override;
  bool decode_needs_host() const override;
  int64_t cache_bytes_per_token(int64_t elem_bytes) const override;
  int64_t cache_bytes_fixed(int64_t elem_bytes) const override;

 private:
  model::Mixer& current() const;
  std::unique_ptr<model::Mixer> full_, swa_, linear_;
};

struct SupernetOptions {
  std::string linear_type = "jet";  // jet | gdn | deltanet | gla | retnet | mamba2
  nlohmann::json linear_config;     // efficient_attention_config[linear_type]; null: default_linear_config()
  int64_t swa_window = 256;
  bool init_from_teacher = true;    // q/k/v/o of the linear block from the teacher's where shapes allow
  uint64_t seed = 0;                // the linear blocks' initialisation
};

// The linear block config a teacher gets by default: the teacher's heads and head width, so the
// teacher's projections fit (jet, gdn: num_heads = attention heads, head_dim = head_dim, expand_v 1).
nlohmann::json default_linear_config(const model::ModelConfig& teacher, const std::string& type);

class Supernet {
 public:
  // teacher_weights: the teacher's tensors by HF name (moved from). dtype/device: the frozen teacher's;
  // the linear blocks keep fp32 where the model does (A_log, norms) and follow dtype otherwise.
  Supernet(const model::ModelConfig& teacher, io::TensorMap teacher_weights, const SupernetOptions& opts,
           at::ScalarType dtype, at::Device device);

  model::CausalLM& lm() { return *lm_; }
  const model::CausalLM& lm() const { return *lm_; }
  int64_t num_layers() const { return lm_->num_layers(); }
  const SupernetOptions& options() const { return opts_; }
  const model::ModelConfig& teacher_config() const { return lm_->config(); }

  void set_placement(const Placement& p);  // p's layers attention (full / window), the rest linear
  void set_teacher();                      // every layer full attention: the teacher itself
  // Attention transfer (layer-local distillation before the end-to-end KL; LoLCATs-style): every layer on the
  // teacher's attention, each linear block also run on its layer's teacher input (SuperMixer::transfer).
  // set_transfer(false) leaves the teacher path on.
  void set_transfer(bool on);
  // The mean over layers of their transfer_loss since the last forward (differentiable in the linear blocks).
  at::Tensor transfer_loss() const;

  // The trainable parameters: "model.layers.{i}.linear_attn.<block name>".
  const model::ParamList& linear_params() const { return linear_params_; }
  io::TensorMap linear_weights() const;  // CPU fp32 copies
  void load_linear_weights(const io::TensorMap& w, const std::string& where);  // every one, shapes checked

  // The fixed hybrid of a placement: its config.json (teacher's schema + layer_types +
  // efficient_attention_config; a Qwen2 teacher becomes model_type jet_nemotron) and its weights (the
  // teacher's, and for linear layers the trained block under "model.layers.{i}.self_attn.").
  model::ModelConfig hybrid_config(const Placement& p) const;
  io::TensorMap hybrid_weights(const Placement& p) const;

 private:
  SupernetOptions opts_;
  nlohmann::json linear_config_;
  std::unique_ptr<model::CausalLM> lm_;
  std::vector<SuperMixer*> mixers_;  // owned by lm_
  model::ParamList linear_params_;
};

// One attention-transfer step's forward and backward over ids [B, T] (CPU) in micro-batches of micro_batch
// sequences (0: all): gradients accumulate in the linear blocks; returns the mean transfer loss as a 0-dim
// float64 device tensor (nothing waits for the device). before_backward (when set) sees the last backward's root.
at::Tensor transfer_step(Supernet& net, const at::Tensor& ids, int64_t micro_batch,
                         const std::function<void(const at::Tensor&)>& before_backward = {});

}  // namespace jet::postnas
