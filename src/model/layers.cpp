// Linear, RMSNorm, SwiGLU MLP and RoPE (with linear / llama3 frequency scaling).
#include "model/layers.h"

#include <ATen/ATen.h>

#include <cmath>

#include "model/packed_rows.h"
#include "ops/activations/silu_mul.h"
#include "ops/norms/norms.h"

namespace jet::model {

void Linear::declare(ParamList& params, const std::string& name, int64_t in, int64_t out,
                     bool has_bias) {
  params.push_back({name + ".weight", {out, in}, &weight, false, &qweight});
  if (has_bias) params.push_back({name + ".bias", {out}, &bias});
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  return qweight.defined() ? ops::qmatmul(x, qweight, bias) : at::linear(x, weight, bias);
}

void RMSNorm::declare(ParamList& params, const std::string& name, int64_t dim, double eps_) {
  params.push_back({name + ".weight", {dim}, &weight});
  eps = eps_;
}

at::Tensor RMSNorm::operator()(const at::Tensor& x) const { return ops::rms_norm(x, weight, eps); }

void Mlp::declare(ParamList& params, const std::string& prefix, const ModelConfig& c) {
  gate_proj.declare(params, prefix + "gate_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
  up_proj.declare(params, prefix + "up_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
  down_proj.declare(params, prefix + "down_proj", c.intermediate_size, c.hidden_size, c.mlp_bias);
}

at::Tensor Mlp::operator()(const at::Tensor& x) const {
  // gate and up in one GEMM when load_weights packed them (model/packed_rows.h).
  const auto [packed, gu] = packed_linear(x, {&gate_proj, &up_proj});
  if (packed) return down_proj(ops::silu_mul_packed(gu));
  return down_proj(ops::silu_mul(gate_proj(x), up_proj(x)));
}

Rope::Rope(const RopeConfig& c, int64_t head_dim) {
  // inv_freq[i] = theta^(-2i/d), in fp32 like the reference implementations.
  at::Tensor exponent = at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(head_dim);
  inv_freq_ = 1.0 / at::pow(at::scalar_tensor(c.theta, at::kFloat), exponent);
  if (c.scaling == RopeScaling::linear) {
    inv_freq_ = inv_freq_ / c.factor;
  } else if (c.scaling == RopeScaling::llama3) {
    // Llama 3.1: wavelengths longer than old_ctx / low_freq_factor are slowed by `factor`, those
    // shorter than old_ctx / high_freq_factor are kept, and the band between is interpolated.
    const double old_ctx = static_cast<double>(c.original_max_position_embeddings);
    const double low_wavelen = old_ctx / c.low_freq_factor;
    const double high_wavelen = old_ctx / c.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv_freq_;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq_ / c.factor, inv_freq_);
    at::Tensor smooth = (old_ctx / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
    at::Tensor blended = (1 - smooth) * scaled / c.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq_ = at::where(medium, blended, scaled);
  }
}

std::pair<at::Tensor, at::Tensor> Rope::cos_sin(int64_t start, int64_t T, at::Device device,
                                                at::ScalarType dtype) const {
  at::Tensor pos = at::arange(start, start + T, at::TensorOptions().dtype(at::kLong).device(device))
                       .to(at::kFloat);
  at::Tensor freqs = at::outer(pos, inv_freq_.to(device));  // [T, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);              // [T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

std::pair<at::Tensor, at::Tensor> Rope::cos_sin(const at::Tensor& positions, at::ScalarType dtype) const {
  const int64_t B = positions.size(0);
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(1) * inv_freq_.to(positions.device());  // [B, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).view({B, 1, 1, -1});                            // [B, 1, 1, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace jet::model
