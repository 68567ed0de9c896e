// Shared machinery of the linear blocks: the named parameter table, seeded init, small reshapes.
#include "model/blocks/block.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/check.h"
#include "core/shape.h"
#include "core/strings.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/norms/norms.h"
#include "ops/short_conv/short_conv.h"

namespace jet::model {

const at::Tensor& LinearBlock::p(const std::string& name) const {
  auto it = index_.find(name);
  JET_CHECK(it != index_.end(), "{} block has no parameter '{}'", type(), name);
  return params_[it->second].second;
}

const ops::QWeight& LinearBlock::q(const std::string& name) const {
  auto it = index_.find(name);
  JET_CHECK(it != index_.end(), "{} block has no parameter '{}'", type(), name);
  return qparams_[it->second];
}

void LinearBlock::set(const std::string& name, const at::Tensor& value) {
  auto it = index_.find(name);
  JET_CHECK(it != index_.end(), "{} block has no parameter '{}'", type(), name);
  at::Tensor& t = params_[it->second].second;
  JET_CHECK(value.sizes() == t.sizes(), "{} block: parameter '{}' is {}, got {}", type(), name,
            shape_str(t.sizes()), shape_str(value.sizes()));
  t = value;
}

void LinearBlock::add(const std::string& name, at::Tensor value) {
  index_[name] = params_.size();
  params_.emplace_back(name, std::move(value));
  qparams_.emplace_back();
}

bool LinearBlock::keeps_fp32(const std::string& name) {
  return name == "A_log" || name == "dt_bias" || name == "D" || name.find("norm") != std::string::npos;
}

bool LinearBlock::is_linear(const std::string& name) {
  // *_proj (q/k/v/g/a/b/o/in/out projections, GLA's gk_proj.{0,1}) and JetBlock's kernel generator.
  return name.find("_proj.") != std::string::npos || name.find("kernel_generator.") != std::string::npos;
}

void LinearBlock::to(at::Device device, at::ScalarType dtype) {
  for (auto& [name, t] : params_) {
    if (!t.defined()) continue;  // in blocks (qparams_): a quantized model stays on the CPU
    const bool grad = t.requires_grad();
    t = t.detach().to(device, keeps_fp32(name) ? at::kFloat : dtype).requires_grad_(grad);
  }
}

void LinearBlock::declare(ParamList& params, const std::string& prefix) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& [name, t] = params_[i];
    params.push_back({prefix + name, t.sizes().vec(), &t, keeps_fp32(name),
                      is_linear(name) && ends_with(name, ".weight") && t.dim() == 2 ? &qparams_[i] : nullptr});
  }
}

at::Tensor LinearBlock::linear(const at::Tensor& x, const std::string& weight, const std::string& bias) const {
  const at::Tensor b = bias.empty() ? at::Tensor() : p(bias);
  const ops::QWeight& w = q(weight);
  return w.defined() ? ops::qmatmul(x, w, b) : dense(x, p(weight), b);
}

at::TensorOptions LinearBlock::act_options() const {
  at::TensorOptions o = at::TensorOptions().dtype(at::kFloat);
  bool dtype_set = false;
  for (const auto& [name, t] : params_) {
    if (!t.defined()) continue;
    o = o.device(t.device());
    if (!dtype_set && !keeps_fp32(name)) o = o.dtype(t.scalar_type()), dtype_set = true;
  }
  return o;
}

at::Tensor LinearBlock::proj_conv(const std::string& n, const at::Tensor& x, const at::Tensor& tail,
                                  at::Tensor* new_tail) const {
  const std::string bias = n + "_conv1d.bias";
  const at::Tensor raw = linear(x, n + "_proj.weight");
  const at::Tensor taps = conv_taps(p(n + "_conv1d.weight"));
  if (new_tail) *new_tail = ops::conv_tail_after(raw, tail, taps.size(1));
  return ops::short_conv(raw, taps, has(bias) ? p(bias) : at::Tensor(), tail, true);
}

at::Tensor LinearBlock::proj_conv_step(const std::string& n, const at::Tensor& x, at::Tensor& tail) const {
  const std::string bias = n + "_conv1d.bias";
  return ops::short_conv_step(linear(x, n + "_proj.weight"), conv_taps(p(n + "_conv1d.weight")),
                              has(bias) ? p(bias) : at::Tensor(), tail, true);
}

at::Tensor LinearBlock::conv_qkv_forward(const at::Tensor& x, BlockState* state, int64_t heads, const at::Tensor& g,
                                         const at::Tensor& beta, const ops::LinearAttentionOptions& opts,
                                         double eps) const {
  const char* names[] = {"q", "k", "v"};
  at::Tensor qkv[3], tails[3];
  for (int i = 0; i < 3; ++i)
    qkv[i] = proj_conv(names[i], x, state ? state->conv[i] : at::Tensor(), state ? &tails[i] : nullptr);
  ops::LinearAttentionInput in{split_heads(qkv[0], heads), split_heads(qkv[1], heads), split_heads(qkv[2], heads),
                               g, beta, state ? state->S : at::Tensor(), at::Tensor()};
  ops::LinearAttentionOutput la = ops::linear_attention_chunked(in, opts);
  if (state) {
    for (int i = 0; i < 3; ++i) state->conv[i] = tails[i];
    state->S = la.final_state;
    state->offset += x.size(1);
  }
  return norm_gate_out(la.o, x, "o_norm.weight", eps);
}

at::Tensor LinearBlock::conv_qkv_step(const at::Tensor& x, BlockState& state, int64_t heads, const at::Tensor& g,
                                      const at::Tensor& beta, const ops::LinearAttentionOptions& opts, double eps) const {
  c10::NoGradGuard no_grad;
  const at::Tensor q = proj_conv_step("q", x, state.conv[0]), k = proj_conv_step("k", x, state.conv[1]),
                   v = proj_conv_step("v", x, state.conv[2]);
  const at::Tensor o =
      ops::linear_attention_step(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), g, beta, state.S, opts);
  state.offset += 1;
  return norm_gate_out(o, x, "o_norm.weight", eps);
}

at::Tensor LinearBlock::norm_gate_out(const at::Tensor& o, const at::Tensor& x, const std::string& norm, double eps,
                                      const at::Tensor& gate) const {
  at::Tensor n;
  if (has("g_proj.weight")) {
    const at::Tensor z = split_heads(gate.defined() ? gate : linear(x, "g_proj.weight"), o.size(-2));
    n = ops::gated_rms_norm(o, z, p(norm), eps, true);
  } else {
    n = ops::rms_norm(o, p(norm), eps);
  }
  return linear(merge_heads(n).to(x.scalar_type()), "o_proj.weight");
}

Init::Init(uint64_t seed) : draw_(seed != kUninitialised), gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

at::Tensor Init::zeros(at::IntArrayRef shape) { return draw_ ? at::zeros(shape) : at::empty(shape); }

at::Tensor Init::ones(at::IntArrayRef shape) { return draw_ ? at::ones(shape) : at::empty(shape); }

at::Tensor Init::normal(at::IntArrayRef shape, double std) {
  if (!draw_) return at::empty(shape);
  if (std == 0.0) return at::zeros(shape);  // N(0, 0), without a draw
  return at::normal(0.0, std, shape, gen_, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor Init::uniform(at::IntArrayRef shape, double lo, double hi) {
  if (!draw_) return at::empty(shape);
  return at::empty(shape, at::kFloat).uniform_(lo, hi, gen_);
}

at::Tensor Init::a_log(int64_t heads, double lo, double hi) {
  return draw_ ? uniform({heads}, lo, hi).log() : at::empty({heads});
}

at::Tensor Init::dt_bias(int64_t heads, double dt_min, double dt_max, double dt_floor) {
  if (!draw_) return at::empty({heads});
  const at::Tensor dt =
      (uniform({heads}, 0.0, 1.0) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min)).exp().clamp_min(dt_floor);
  return dt + at::log(-at::expm1(-dt));  // softplus⁻¹
}

at::Tensor Init::conv_weight(int64_t channels, int64_t width) {
  const double b = 1.0 / std::sqrt(static_cast<double>(width));
  return uniform({channels, 1, width}, -b, b);
}

at::Tensor Init::conv_bias(int64_t channels, int64_t width) {
  const double b = 1.0 / std::sqrt(static_cast<double>(width));
  return uniform({channels}, -b, b);
}

at::Tensor split_heads(const at::Tensor& x, int64_t heads) { return x.unflatten(-1, {heads, -1}); }

at::Tensor merge_heads(const at::Tensor& x) { return x.flatten(-2); }

at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::linear(x, weight.to(x.scalar_type()), bias.defined() ? bias.to(x.scalar_type()) : bias);
}

bool close_to_integer(double x) {
  return std::abs(x - static_cast<double>(static_cast<int64_t>(x))) <= 1e-5 * std::abs(x);
}

at::Tensor conv_taps(const at::Tensor& weight) { return weight.squeeze(1); }

}  // namespace jet::model
