// GQA attention: q/k/v projections, RoPE, scaled dot-product attention over the cached past plus the
// new tokens (causal, optionally limited to a sliding window), output projection.
#include "model/attention.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/check.h"
#include "core/shape.h"
#include "model/packed_rows.h"
#include "ops/attention/decode_attention.h"

namespace jet::model {

Attention::Attention(const ModelConfig& c, const std::string& prefix, ParamList& params, int64_t window)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim), window_(window) {
  q_proj_.declare(params, prefix + "q_proj", c.hidden_size, c.q_dim(), c.qkv_bias);
  k_proj_.declare(params, prefix + "k_proj", c.hidden_size, c.kv_dim(), c.qkv_bias);
  v_proj_.declare(params, prefix + "v_proj", c.hidden_size, c.kv_dim(), c.qkv_bias);
  o_proj_.declare(params, prefix + "o_proj", c.q_dim(), c.hidden_size, c.o_bias);
}

at::Tensor Attention::forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) {
  const int64_t B = x.size(0), T = x.size(1), start = ctx.start_pos;
  // [B, T, H*D] -> [B, H, T, D]
  auto heads = [&](const at::Tensor& t, int64_t h) { return t.view({B, T, h, head_dim_}).transpose(1, 2); };
  at::Tensor q = Rope::apply(heads(q_proj_(x), heads_), ctx.cos, ctx.sin);
  at::Tensor k = Rope::apply(heads(k_proj_(x), kv_heads_), ctx.cos, ctx.sin);
  at::Tensor v = heads(v_proj_(x), kv_heads_);

  int64_t key_start = start;  // position of k[:, :, 0]
  if (state) {
    auto& s = static_cast<KVState&>(*state);
    JET_CHECK(s.k.size(0) == B, "attention cache is for batch {}, input has batch {}", s.k.size(0), B);
    if (window_ == 0) {
      // Linear buffer: positions are slots; continuing earlier than the end overwrites (rollback).
      JET_CHECK(start <= s.length, "attention cache holds {} tokens, cannot continue at {}", s.length, start);
      JET_CHECK(start + T <= s.k.size(2), "attention cache is full ({} tokens)", s.k.size(2));
      s.k.narrow(2, start, T).copy_(k);
      s.v.narrow(2, start, T).copy_(v);
      k = s.k.narrow(2, 0, start + T);
      v = s.v.narrow(2, 0, start + T);
      key_start = 0;
    } else {
      // Ring of the last `cap` tokens (position p in slot p % cap); the new tokens need the previous
      // window - 1 of them at most.
      JET_CHECK(start == s.length, "sliding-window cache holds {} tokens and can only continue there, not at {}",
                s.length, start);
      const int64_t cap = s.k.size(2), n = std::min({start, window_ - 1, cap});
      auto opts = at::TensorOptions().dtype(at::kLong).device(x.device());
      at::Tensor old_slots = at::remainder(at::arange(start - n, start, opts), cap);
      k = at::cat({s.k.index_select(2, old_slots), k}, 2);
      v = at::cat({s.v.index_select(2, old_slots), v}, 2);
      key_start = start - n;
      const int64_t m = std::min(T, cap);  // only the last `cap` new tokens can stay
      at::Tensor new_slots = at::remainder(at::arange(start + T - m, start + T, opts), cap);
      s.k.index_copy_(2, new_slots, k.narrow(2, k.size(2) - m, m));
      s.v.index_copy_(2, new_slots, v.narrow(2, v.size(2) - m, m));
    }
    s.length = start + T;
  }
  const int64_t S = k.size(2);
  const bool windowed = window_ > 0 && start + T - key_start > window_;
  // ATen's enable_gqa path is a slow fallback on CPU (milliseconds for one decode step), so the KV
  // heads are shared explicitly. Query head h uses KV head h / rep.
  const int64_t rep = heads_ / kv_heads_;
  at::Tensor out;
  if (T == 1 && !windowed) {
    out = attend_one(q, k, v, {});
  } else {
    if (rep > 1) {  // [B, Hkv, S, D] -> [B, H, S, D]
      auto repeat = [&](const at::Tensor& t) {
        return t.unsqueeze(2).expand({B, kv_heads_, rep, S, head_dim_}).reshape({B, heads_, S, head_dim_});
      };
      k = repeat(k);
      v = repeat(v);
    }
    if (key_start == start && !windowed) {
      out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    } else {
      // Query at position qp sees keys at positions kp <= qp (and kp > qp - window).
      auto opts = at::TensorOptions().dtype(at::kLong).device(x.device());
      at::Tensor kp = at::arange(key_start, key_start + S, opts).unsqueeze(0);  // [1, S]
      at::Tensor qp = at::arange(start, start + T, opts).unsqueeze(1);          // [T, 1]
      at::Tensor mask = kp <= qp;
      if (window_ > 0) mask = mask.logical_and(kp > qp - window_);
      out = at::scaled_dot_product_attention(q, k, v, mask);
    }
  }
  return o_proj_(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

at::Tensor Attention::attend_one(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& positions) const {
  // ops::decode_attention: the CUDA split-K kernel on the GPU, grouped matmuls elsewhere.
  const int64_t B = q.size(0);
  return ops::decode_attention(q.reshape({B, heads_, head_dim_}), k, v, positions).view({B, heads_, 1, head_dim_});
}

at::Tensor Attention::forward_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state,
                                   int64_t row) {
  auto& s = static_cast<KVState&>(state);
  const int64_t n = x.size(0);
  JET_CHECK(row >= 0 && row + n <= s.k.size(0), "attention cache rows [{}, {}) outside its {} rows", row, row + n,
            s.k.size(0));
  KVState rows;  // views: the writes land in the shared cache
  rows.k = s.k.narrow(0, row, n);
  rows.v = s.v.narrow(0, row, n);
  rows.length = ctx.start_pos;
  return forward(x, ctx, &rows);
}

at::Tensor Attention::decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) {
  auto& s = static_cast<KVState&>(state);
  const int64_t B = x.size(0), cap = s.k.size(2);
  JET_CHECK(x.size(1) == 1 && B <= s.k.size(0), "attention decode_rows: x {} for a cache of {} rows",
            shape_str(x.sizes()), s.k.size(0));
  // Row b's token goes to cache slot positions[b] (a ring slot with a window). Every slot j <= positions[b]
  // holds one of that row's tokens; in a ring of `window` slots those are exactly the window.
  at::Tensor ks = s.k.narrow(0, 0, B), vs = s.v.narrow(0, 0, B);
  // q, k, v [B, 1, h·D]: column blocks of one GEMM when load_weights packed the projections.
  at::Tensor qx, kx, vx;
  const auto [packed, qkv] = packed_linear(x, {&q_proj_, &k_proj_, &v_proj_});
  if (packed) {
    const int64_t nq = heads_ * head_dim_, nkv = kv_heads_ * head_dim_;
    qx = qkv.narrow(-1, 0, nq), kx = qkv.narrow(-1, nq, nkv), vx = qkv.narrow(-1, nq + nkv, nkv);
  } else {
    qx = q_proj_(x), kx = k_proj_(x), vx = v_proj_(x);
  }
  at::Tensor q;  // [B, H, 1, D] after RoPE
  if (ops::rope_kv_write_cuda_supports(x, s.k)) {  // one kernel for RoPE and the cache write
    q = ops::rope_kv_write_cuda(qx, kx, vx, ctx.cos, ctx.sin, ctx.positions, ks, vs, window_ > 0).unsqueeze(2);
  } else {
    auto heads = [&](const at::Tensor& t, int64_t h) { return t.view({B, 1, h, head_dim_}).transpose(1, 2); };
    q = Rope::apply(heads(qx, heads_), ctx.cos, ctx.sin);
    at::Tensor k = Rope::apply(heads(kx, kv_heads_), ctx.cos, ctx.sin);
    at::Tensor v = heads(vx, kv_heads_);
    at::Tensor slot = window_ > 0 ? at::remainder(ctx.positions, cap) : ctx.positions;
    at::Tensor index = slot.view({B, 1, 1, 1}).expand({B, kv_heads_, 1, head_dim_});
    ks.scatter_(2, index, k);
    vs.scatter_(2, index, v);
  }
  const int64_t S = window_ > 0 ? cap : ctx.key_len;
  JET_CHECK(S > 0 && S <= cap, "attention decode_rows: key_len {} outside the cache's {} positions", S, cap);
  at::Tensor out = attend_one(q, ks.narrow(2, 0, S), vs.narrow(2, 0, S), ctx.positions);
  return o_proj_(out.transpose(1, 2).reshape({B, 1, heads_ * head_dim_}));
}

std::unique_ptr<MixerState> Attention::new_state(int64_t batch, int64_t max_len,
                                                 const at::TensorOptions& opts) const {
  const int64_t cap = window_ > 0 ? std::min(window_, max_len) : max_len;
  auto s = std::make_unique<KVState>();
  s->k = at::zeros({batch, kv_heads_, cap, head_dim_}, opts);
  s->v = at::zeros({batch, kv_heads_, cap, head_dim_}, opts);
  return s;
}

int64_t Attention::cache_bytes_per_token(int64_t elem_bytes) const {
  return window_ > 0 ? 0 : 2 * kv_heads_ * head_dim_ * elem_bytes;
}

int64_t Attention::cache_bytes_fixed(int64_t elem_bytes) const {
  return window_ > 0 ? 2 * kv_heads_ * window_ * head_dim_ * elem_bytes : 0;
}

}  // namespace jet::model
