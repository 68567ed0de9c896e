// Causal multi-head attention with grouped KV heads (GQA), RoPE and a preallocated KV cache: the
// "attn" mixer of Llama / Qwen2 / Jet-Nemotron layers, and with a window the "swa" mixer (each token
// sees itself and the window - 1 tokens before it; the cache is a ring of `window` tokens).
#pragma once
#include "model/layers.h"
#include "model/mixer.h"

namespace jet::model {

struct KVState : MixerState {
  at::Tensor k, v;     // [B, Hkv, max_len or window, head_dim], written in place
  int64_t length = 0;  // tokens seen
};

class Attention : public Mixer {
 public:
  // window 0: full causal attention.
  Attention(const ModelConfig& c, const std::string& prefix, ParamList& params, int64_t window = 0);
  at::Tensor forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) override;
  at::Tensor forward_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state,
                          int64_t row) override;
  at::Tensor decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) override;
  // Quantized projections: one packed int8 GEMM for q/k/v, RoPE and the cache write in place, ops::cpu::attend
  // per query head (split across the pool), o_proj (cpu_decode.cpp).
  bool decode_rows_cpu(const float* x, const CpuStep& step, MixerState& state, float* out) override;
  std::unique_ptr<MixerState> new_state(int64_t batch, int64_t max_len,
                                        const at::TensorOptions& opts) const override;
  int64_t cache_bytes_per_token(int64_t elem_bytes) const override;
  int64_t cache_bytes_fixed(int64_t elem_bytes) const override;

 private:
  // q [B, H, 1, D] against k, v [B, Hkv, S, D]; row b sees slots j <= positions[b] ([B] int64), or
  // all S slots when positions is undefined.
  at::Tensor attend_one(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& positions) const;

  int64_t heads_, kv_heads_, head_dim_, window_;
  Linear q_proj_, k_proj_, v_proj_, o_proj_;
};

}  // namespace jet::model
