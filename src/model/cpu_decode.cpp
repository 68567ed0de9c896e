// The decode step of a quantized model on the CPU (CausalLM::decode_rows when quantized()): the same math as the
// ATen path, on raw fp32 rows. At batch 1 a step of a 135M model is ~10 ms on one core, and the ATen path's
// ~2,500 operator calls per step (reshapes, views, small kernels, allocations) would cost about as much as the
// math: here each layer is two or three int8 GEMMs (ops/qmatmul, split across ATen's thread pool), fused
// residual-add + RMSNorm, RoPE, the cache write and one attention kernel per query head (ops/cpu). Scratch rows
// live in per-thread buffers that grow once; the logits are the only tensor a step allocates. JetBlock and Gated
// DeltaNet have a raw path too (LinearBlock::step_cpu, model/blocks/block_cpu.cpp); a mixer without one (DeltaNet,
// GLA, RetNet, Mamba2) runs its own decode_rows (ATen, quantized projections) on a tensor view of the rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <array>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "model/attention.h"
#include "model/causal_lm.h"
#include "model/packed_rows.h"
#include "ops/cpu/cpu_kernels.h"

namespace jet::model {
namespace {

using ops::cpu::scratch;

// y [B, N] (row stride ldy) = x [B, K] · layers' quantized weights (one pass when load_weights packed them, else one
// per layer into its column block), + biases.
void linear_rows(const float* x, int64_t B, int64_t K, const std::vector<const Linear*>& layers, float* y,
                 int64_t ldy) {
  std::array<const ops::QWeight*, 4> ws;
  JET_CHECK(layers.size() <= ws.size(), "CPU decode step: {} Linear layers read one x", layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    JET_CHECK(layers[i]->qweight.defined(), "CPU decode step: a Linear weight is not quantized");
    ws[i] = &layers[i]->qweight;
  }
  ops::qmatmul_out(x, B, K, at::ArrayRef<const ops::QWeight*>(ws.data(), layers.size()), y, ldy);
  int64_t col = 0;
  for (const Linear* l : layers) {
    const int64_t n = l->qweight.rows;
    if (l->bias.defined()) {
      const at::Tensor bias = l->bias.to(at::kFloat).contiguous();
      const float* bp = bias.data_ptr<float>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < n; ++i) y[b * ldy + col + i] += bp[i];
    }
    col += n;
  }
}

// Rotates `heads` heads of width D in place (HF "rotate half": pairs (i, i + D/2)) with one row's cos, sin [D].
void rope_row(float* x, int64_t heads, int64_t D, const float* cos, const float* sin) {
  const int64_t half = D / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * D;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i + half] + a * sin[i + half];
    }
  }
}

}  // namespace

bool Attention::decode_rows_cpu(const float* x, const CpuStep& step, MixerState& state, float* out) {
  auto& s = static_cast<KVState&>(state);
  if (!q_proj_.qweight.defined() || s.k.scalar_type() != at::kFloat || !s.k.is_contiguous() || !s.v.is_contiguous())
    return false;
  const int64_t B = step.batch, D = q_proj_.qweight.cols, hd = head_dim_, cap = s.k.size(2);
  JET_CHECK(B <= s.k.size(0), "attention decode: {} rows for a cache of {}", B, s.k.size(0));
  const int64_t nq = heads_ * hd, nkv = kv_heads_ * hd, ld = nq + 2 * nkv;
  float* qkv = scratch(0, B * ld);
  linear_rows(x, B, D, {&q_proj_, &k_proj_, &v_proj_}, qkv, ld);
  float* kc = s.k.data_ptr<float>();
  float* vc = s.v.data_ptr<float>();
  const int64_t S = window_ > 0 ? cap : step.key_len;
  JET_CHECK(S > 0 && S <= cap, "attention decode: key_len {} outside the cache's {} positions", S, cap);
  for (int64_t b = 0; b < B; ++b) {
    float* row = qkv + b * ld;
    rope_row(row, heads_ + kv_heads_, hd, step.cos + b * hd, step.sin + b * hd);  // q and k heads are adjacent
    const int64_t pos = step.positions[b], slot = window_ > 0 ? pos % cap : pos;
    JET_CHECK(pos >= 0 && slot < cap, "attention decode: position {} outside the cache's {} positions", pos, cap);
    for (int64_t g = 0; g < kv_heads_; ++g) {
      const int64_t at = ((b * kv_heads_ + g) * cap + slot) * hd;
      std::memcpy(kc + at, row + nq + g * hd, hd * sizeof(float));
      std::memcpy(vc + at, row + nq + nkv + g * hd, hd * sizeof(float));
    }
  }
  // Row b's query head h reads KV head h / rep over the slots j < S with j <= positions[b].
  float* att = scratch(1, B * nq);
  const int64_t rep = heads_ / kv_heads_;
  const float scale = 1.f / std::sqrt(float(hd));
  at::parallel_for(0, B * heads_, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / heads_, h = i % heads_, g = h / rep;
      const int64_t n = std::min(S, step.positions[b] + 1);
      const int64_t base = (b * kv_heads_ + g) * cap * hd;
      ops::cpu::attend(qkv + b * ld + h * hd, kc + base, vc + base, hd, n, hd, scale, scratch(2, S),
                       att + b * nq + h * hd);
    }
  });
  linear_rows(att, B, nq, {&o_proj_}, out, D);
  return true;
}

at::Tensor CausalLM::decode_rows_cpu(const at::Tensor& ids, const at::Tensor& positions, Cache& cache, int64_t key_len,
                                     const std::vector<int64_t>& host_positions) const {
  JET_CHECK(ids.dim() == 1 && positions.sizes() == ids.sizes() && ids.size(0) <= cache.batch,
            "decode_rows: ids {} and positions {} must be [B] with B <= {}", shape_str(ids.sizes()),
            shape_str(positions.sizes()), cache.batch);
  const at::Tensor ids_c = ids.to(at::kLong).contiguous(), pos_c = positions.to(at::kLong).contiguous();
  const int64_t B = ids.size(0), D = config_.hidden_size, hd = config_.head_dim, I = config_.intermediate_size;
  const int64_t* id = ids_c.data_ptr<int64_t>();
  const int64_t* pos = pos_c.data_ptr<int64_t>();
  // Buffers 0-2 belong to the attention; 3.. to the stack.
  float* x = scratch(3, B * D);
  float* normed = scratch(4, B * D);
  float* out = scratch(5, B * D);
  float* cos = scratch(6, B * hd);
  float* sin = scratch(7, B * hd);
  for (int64_t b = 0; b < B; ++b) {
    JET_CHECK(id[b] >= 0 && id[b] < embed_q_.rows, "token id out of range [0, {}): {}", embed_q_.rows, id[b]);
    ops::dequantize_row(embed_q_, id[b], x + b * D);
  }
  // cos / sin of position · inv_freq in fp32, the two halves equal (Rope::cos_sin).
  const at::Tensor inv = rope_.inv_freq().to(at::kFloat).contiguous();
  const float* f = inv.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < hd / 2; ++i) {
      const float angle = float(pos[b]) * f[i];
      cos[b * hd + i] = cos[b * hd + i + hd / 2] = std::cos(angle);
      sin[b * hd + i] = sin[b * hd + i + hd / 2] = std::sin(angle);
    }
  CpuStep step{B, pos, key_len, cos, sin};
  ForwardContext ctx;  // for mixers without a raw path, built on first use
  auto each_row = [&](auto fn) {
    for (int64_t b = 0; b < B; ++b) fn(b * D);
  };
  auto norm_rows = [&](const RMSNorm& n, const float* y) {  // x += y (unless null), normed = n(x)
    const float* w = n.weight.data_ptr<float>();
    each_row([&](int64_t o) {
      if (y)
        ops::cpu::add_rms_norm(x + o, y + o, w, float(n.eps), D, normed + o);
      else
        ops::cpu::rms_norm(x + o, w, float(n.eps), D, normed + o);
    });
  };
  norm_rows(layers_.empty() ? norm_ : layers_[0].input_layernorm, nullptr);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayer& l = layers_[i];
    if (!l.mixer->decode_rows_cpu(normed, step, *cache.layers[i], out)) {
      if (!ctx.positions.defined()) {
        ctx.positions = pos_c;
        ctx.key_len = key_len;
        ctx.host_positions = host_positions;
        std::tie(ctx.cos, ctx.sin) = rope_.cos_sin(pos_c, dtype_);
      }
      const at::Tensor y = l.mixer->decode_rows(at::from_blob(normed, {B, 1, D}, at::kFloat), ctx, *cache.layers[i]);
      at::from_blob(out, {B, 1, D}, at::kFloat).copy_(y);
    }
    norm_rows(l.post_attention_layernorm, out);
    float* gu = scratch(8, B * 2 * I);
    float* act = scratch(9, B * I);
    linear_rows(normed, B, D, {&l.mlp.gate_proj, &l.mlp.up_proj}, gu, 2 * I);
    for (int64_t b = 0; b < B; ++b) ops::cpu::silu_mul(gu + b * 2 * I, gu + b * 2 * I + I, I, act + b * I);
    linear_rows(act, B, I, {&l.mlp.down_proj}, out, D);
    norm_rows(i + 1 < layers_.size() ? layers_[i + 1].input_layernorm : norm_, out);
  }
  at::Tensor logits = at::empty({B, config_.vocab_size}, at::kFloat);
  ops::qmatmul_out(normed, B, D, lm_head_q_, logits.data_ptr<float>(), config_.vocab_size);
  return logits;
}

}  // namespace jet::model
