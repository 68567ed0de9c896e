// GQA attention: q/k/v projections, RoPE, scaled dot-product attention over the cached past plus the
// new tokens (causal), output projection.
#include "model/attention.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/check.h"

namespace jet::model {

Attention::Attention(const ModelConfig& c, const std::string& prefix, ParamList& params)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj_.declare(params, prefix + "q_proj", c.hidden_size, c.q_dim(), c.qkv_bias);
  k_proj_.declare(params, prefix + "k_proj", c.hidden_size, c.kv_dim(), c.qkv_bias);
  v_proj_.declare(params, prefix + "v_proj", c.hidden_size, c.kv_dim(), c.qkv_bias);
  o_proj_.declare(params, prefix + "o_proj", c.q_dim(), c.hidden_size, c.o_bias);
}

at::Tensor Attention::forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) {
  const int64_t B = x.size(0), T = x.size(1);
  // [B, T, H*D] -> [B, H, T, D]
  auto heads = [&](const at::Tensor& t, int64_t h) { return t.view({B, T, h, head_dim_}).transpose(1, 2); };
  at::Tensor q = Rope::apply(heads(q_proj_(x), heads_), ctx.cos, ctx.sin);
  at::Tensor k = Rope::apply(heads(k_proj_(x), kv_heads_), ctx.cos, ctx.sin);
  at::Tensor v = heads(v_proj_(x), kv_heads_);

  int64_t past = 0;
  if (state) {
    auto& s = static_cast<KVState&>(*state);
    JET_CHECK(ctx.start_pos <= s.length, "attention cache holds {} tokens, cannot continue at {}",
              s.length, ctx.start_pos);
    JET_CHECK(ctx.start_pos + T <= s.k.size(2), "attention cache is full ({} tokens)", s.k.size(2));
    JET_CHECK(s.k.size(0) == B, "attention cache is for batch {}, input has batch {}", s.k.size(0), B);
    past = ctx.start_pos;
    s.k.narrow(2, past, T).copy_(k);
    s.v.narrow(2, past, T).copy_(v);
    s.length = past + T;
    k = s.k.narrow(2, 0, past + T);
    v = s.v.narrow(2, 0, past + T);
  }
  // ATen's enable_gqa path is a slow fallback on CPU (milliseconds for one decode step), so the KV
  // heads are shared explicitly. Query head h uses KV head h / rep.
  const int64_t rep = heads_ / kv_heads_;
  at::Tensor out;
  if (T == 1) {
    // One new token sees everything cached: fold each group's query heads into the query length, so
    // K and V are used in place. Written out rather than through SDPA: on CUDA, SDPA's cuDNN backend
    // builds a plan for every new key length, i.e. at every decode step.
    at::Tensor qg = q.reshape({B, kv_heads_, rep, head_dim_});                  // [B, Hkv, rep, D]
    at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).to(at::kFloat);  // [B, Hkv, rep, S]
    at::Tensor probs = at::softmax(scores / std::sqrt(static_cast<double>(head_dim_)), -1);
    out = at::matmul(probs.to(v.scalar_type()), v).reshape({B, heads_, 1, head_dim_});
  } else {
    if (rep > 1) {  // [B, Hkv, S, D] -> [B, H, S, D]
      auto repeat = [&](const at::Tensor& t) {
        return t.unsqueeze(2).expand({B, kv_heads_, rep, t.size(2), head_dim_}).reshape({B, heads_, t.size(2), head_dim_});
      };
      k = repeat(k);
      v = repeat(v);
    }
    if (past == 0) {
      out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    } else {
      // Query i (position past+i) sees keys 0..past+i.
      auto opts = at::TensorOptions().dtype(at::kLong).device(x.device());
      at::Tensor mask = at::arange(past + T, opts).unsqueeze(0) <= at::arange(T, opts).unsqueeze(1) + past;
      out = at::scaled_dot_product_attention(q, k, v, mask);
    }
  }
  return o_proj_(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

std::unique_ptr<MixerState> Attention::new_state(int64_t batch, int64_t max_len,
                                                 const at::TensorOptions& opts) const {
  auto s = std::make_unique<KVState>();
  s->k = at::zeros({batch, kv_heads_, max_len, head_dim_}, opts);
  s->v = at::zeros({batch, kv_heads_, max_len, head_dim_}, opts);
  return s;
}

int64_t Attention::cache_bytes_per_token(int64_t elem_bytes) const {
  return 2 * kv_heads_ * head_dim_ * elem_bytes;
}

}  // namespace jet::model
